package engine

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/muster-run/muster"
	"github.com/muster-run/muster/internal/plan"
	"github.com/muster-run/muster/internal/task"
)

// TestFindFile: script and file references resolve in the order Bolt
// documents, and a miss lists every place tried.
func TestFindFile(t *testing.T) {
	proj := t.TempDir()
	mod := filepath.Join(proj, "modules", "m")
	abs := filepath.Join(t.TempDir(), "abs.sh")
	files := []string{
		"modules/m/scripts/s.sh",    // only under scripts/
		"modules/m/files/f.sh",      // only under files/
		"modules/m/scripts/both.sh", // under scripts/ and files/scripts/
		"modules/m/files/scripts/both.sh",
		"modules/m/files/scripts/fo.sh", // only under files/scripts/
		"modules/m/files/dir/x.conf",
		"modules/m/files/shadow.sh", // a project file of the same name loses
		"m/shadow.sh",
		"local/run.sh", // project-relative
		"notamod/run.sh",
	}
	for _, f := range append(files, abs) {
		p := f
		if !filepath.IsAbs(p) {
			p = filepath.Join(proj, f)
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	modules := map[string]string{"m": mod}
	tests := []struct {
		name, ref string
		kind      FileRef
		want      string   // relative to proj, or absolute
		errWants  []string // every fragment the error must hold
	}{
		{"module scripts dir", "m/scripts/s.sh", ScriptRef, "modules/m/scripts/s.sh", nil},
		{"scripts/ before files/scripts/", "m/scripts/both.sh", ScriptRef, "modules/m/scripts/both.sh", nil},
		{"module/path in files/ as module/<path>", "m/scripts/fo.sh", ScriptRef, "modules/m/files/scripts/fo.sh", nil},
		{"module files dir", "m/files/f.sh", ScriptRef, "modules/m/files/f.sh", nil},
		{"module/<path> loads files/<path>", "m/f.sh", ScriptRef, "modules/m/files/f.sh", nil},
		{"a module beats a project path", "m/shadow.sh", ScriptRef, "modules/m/files/shadow.sh", nil},
		{"relative to the project", "local/run.sh", ScriptRef, "local/run.sh", nil},
		{"not a module: relative to the project", "notamod/run.sh", ScriptRef, "notamod/run.sh", nil},
		{"absolute", abs, ScriptRef, abs, nil},
		{"an upload may be a directory", "m/dir", UploadRef, "modules/m/files/dir", nil},
		{"a script may not", "m/dir", ScriptRef, "", []string{`script "m/dir"`, "is not a regular file"}},
		{"missing: every place tried", "m/scripts/nope.sh", ScriptRef, "", []string{
			`No such file or directory: script "m/scripts/nope.sh"`,
			filepath.Join(mod, "scripts", "nope.sh"), filepath.Join(mod, "files", "scripts", "nope.sh"),
			filepath.Join(proj, "m", "scripts", "nope.sh")}},
		{"missing file", "m/files/nope.conf", UploadRef, "", []string{`file "m/files/nope.conf"`,
			filepath.Join(mod, "files", "nope.conf") + ", " + filepath.Join(mod, "files", "files", "nope.conf") + ", " +
				filepath.Join(proj, "m", "files", "nope.conf")}},
		{"unknown module is named", "other/x.sh", ScriptRef, "", []string{filepath.Join(proj, "other", "x.sh"), `no module "other" on the module path`}},
		{"missing absolute", "/nonexistent/x.sh", ScriptRef, "", []string{"tried /nonexistent/x.sh"}},
		{"empty", "", ScriptRef, "", []string{"no script given"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := FindFile(tc.ref, tc.kind, modules, proj)
			if tc.errWants != nil {
				if err == nil {
					t.Fatalf("FindFile(%q) = %q, want an error", tc.ref, got)
				}
				if muster.KindOf(err) != muster.KindInvalid {
					t.Errorf("kind %q", muster.KindOf(err))
				}
				for _, w := range tc.errWants {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error lacks %q:\n%v", w, err)
					}
				}
				return
			}
			want := tc.want
			if !filepath.IsAbs(want) {
				want = filepath.Join(proj, want)
			}
			if err != nil || got != want {
				t.Fatalf("FindFile(%q) = %q, %v; want %q", tc.ref, got, err, want)
			}
		})
	}
}

// TestPlanRunnerCheckStep: the checks a plan makes before a step's
// "Starting" line.
func TestPlanRunnerCheckStep(t *testing.T) {
	proj := t.TempDir()
	for name, text := range map[string]string{
		"modules/m/scripts/s.sh":  "#!/bin/sh\n",
		"modules/m/files/d/x":     "x",
		"modules/m/tasks/t.sh":    "#!/bin/sh\n",
		"modules/m/tasks/t.json":  `{"parameters": {"n": {"type": "Integer"}}}`,
		"modules/m/tasks/nn.sh":   "#!/bin/sh\n",
		"modules/m/tasks/nn.json": `{"supports_noop": false}`,
	} {
		p := filepath.Join(proj, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	idx, err := task.Find([]string{filepath.Join(proj, "modules")})
	if err != nil {
		t.Fatal(err)
	}
	pr := &PlanRunner{Tasks: idx, Dir: proj}
	tests := []struct {
		action, object string
		params         map[string]any
		noop           bool
		err            string
	}{
		{"run_script", "m/scripts/s.sh", nil, false, ""},
		{"run_script", "m/scripts/nope.sh", nil, false, `No such file or directory: script "m/scripts/nope.sh"`},
		{"upload_file", "m/d", nil, false, ""},
		{"upload_file", "m/nope", nil, false, `No such file or directory: file "m/nope"`},
		{"run_task", "m::t", map[string]any{"n": 1}, false, ""},
		{"run_task", "m::nope", nil, false, `could not find a task named "m::nope"`},
		{"run_task", "m::t", map[string]any{"n": "x"}, false, "n"},
		{"run_task", "m::nn", nil, true, "does not support noop"},
		{"run_command", "anything", nil, false, ""},
		{"download_file", "/nope", nil, false, ""},
	}
	for _, tc := range tests {
		t.Run(tc.action+" "+tc.object, func(t *testing.T) {
			err := pr.CheckStep(tc.action, tc.object, tc.params, plan.StepOptions{Noop: tc.noop})
			if tc.err == "" {
				if err != nil {
					t.Fatalf("CheckStep: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.err) || muster.KindOf(err) != muster.KindInvalid {
				t.Fatalf("CheckStep = %v (kind %q), want an invalid-input error with %q", err, muster.KindOf(err), tc.err)
			}
		})
	}
}
