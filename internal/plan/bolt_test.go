package plan

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/muster-run/muster"
)

// loadPlan writes src as a plan file (its kind from the extension) and
// loads it.
func loadPlan(t *testing.T, file, src string) *Plan {
	t.Helper()
	path := filepath.Join(t.TempDir(), file)
	if err := os.WriteFile(path, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	p, err := LoadFile("m::p", path)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestVerboseOnlyWhenVerbose: verbose steps, out::verbose and
// out.verbose say something only with Options.Verbose; messages always.
func TestVerboseOnlyWhenVerbose(t *testing.T) {
	yamlSrc := `steps:
  - message: m1
  - verbose: v1
  - eval: |
      out::verbose('v2')
      out::message('m2')
`
	starSrc := `def main():
    out.message("m1")
    out.verbose("v1")
    print("m2")
`
	tests := []struct {
		file, src string
		verbose   bool
		want      []string
	}{
		{"p.yaml", yamlSrc, false, []string{"m1", "m2"}},
		{"p.yaml", yamlSrc, true, []string{"m1", "v1", "v2", "m2"}},
		{"p.star", starSrc, false, []string{"m1", "m2"}},
		{"p.star", starSrc, true, []string{"m1", "v1", "m2"}},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			p := loadPlan(t, tc.file, tc.src)
			f := newFake()
			if _, err := p.Run(context.Background(), f, nil, Options{Verbose: tc.verbose}); err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tc.want, f.messages); d != "" {
				t.Errorf("verbose=%v messages (-want +got):\n%s", tc.verbose, d)
			}
		})
	}
}

// TestUntypedParameterRequired: a parameter with neither type nor default
// is required; a type that accepts undef, or a default, makes it optional.
func TestUntypedParameterRequired(t *testing.T) {
	tests := []struct {
		file, src string
		required  []string
		optional  []string
	}{
		{"p.yaml", `parameters:
  bare:
  described: {description: nothing else}
  nulldefault: {default: ~}
  typed: {type: String}
  opt: {type: "Optional[String]"}
  any: {type: Any}
  defaulted: {default: 1}
steps: []
`, []string{"bare", "described", "nulldefault", "typed"}, []string{"opt", "any", "defaulted"}},
		{"p.star", `PARAMS = {"bare": None, "typed": "String", "opt": "Optional[String]", "defaulted": {"default": 1}}
def main(**params):
    return None
`, []string{"bare", "typed"}, []string{"opt", "defaulted"}},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			p := loadPlan(t, tc.file, tc.src)
			err := p.Validate(map[string]any{})
			if err == nil {
				t.Fatal("no parameters given, but no error")
			}
			for _, n := range tc.required {
				if !strings.Contains(err.Error(), `parameter "`+n+`" is required`) {
					t.Errorf("%s should be required: %v", n, err)
				}
			}
			for _, n := range tc.optional {
				if strings.Contains(err.Error(), `"`+n+`"`) {
					t.Errorf("%s should be optional: %v", n, err)
				}
			}
			for _, prm := range p.Parameters {
				want := strings.Contains(strings.Join(tc.required, " "), prm.Name)
				if prm.Required() != want {
					t.Errorf("%s.Required() = %v, want %v", prm.Name, prm.Required(), want)
				}
			}
		})
	}
}

// checkingFake is a fakeRunner that refuses, before they start, steps
// on the objects in missing, as the engine's PlanRunner does for a
// missing script, file or task.
type checkingFake struct {
	*fakeRunner
	missing map[string]bool
	checked []string
}

func (c *checkingFake) CheckStep(action, object string, params map[string]any, _ StepOptions) error {
	c.checked = append(c.checked, action+" "+object)
	if c.missing[object] {
		return muster.Errorf(muster.KindInvalid, "No such file or directory: %s", object)
	}
	return nil
}

// TestStepThatCannotStart: a step its Runner refuses fails before
// StepStarted (so no "Starting" or "Finished" for it), and in a YAML plan
// the error names the plan file and the step's line, in the message and
// the details.
func TestStepThatCannotStart(t *testing.T) {
	tests := []struct {
		name, file, src string
		wantLine        int
	}{
		{"yaml script", "p.yaml", `parameters:
  targets: {type: TargetSpec}
steps:
  - command: echo ok
    targets: $targets
  - script: m/nope.sh
    targets: $targets
  - command: echo never
    targets: $targets
`, 6},
		{"yaml task", "p.yaml", `parameters:
  targets: {type: TargetSpec}
steps:
  - command: echo ok
    targets: $targets
  - task: m::nope.sh
    targets: $targets
    parameters: {a: 1}
`, 6},
		{"starlark upload", "p.star", `def main(targets):
    run_command("echo ok", targets)
    upload_file("m/nope.sh", "/tmp/x", targets)
    run_command("echo never", targets)
`, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := loadPlan(t, tc.file, tc.src)
			f := &checkingFake{fakeRunner: newFake(), missing: map[string]bool{"m/nope.sh": true, "m::nope.sh": true}}
			_, err := p.Run(context.Background(), f, map[string]any{"targets": "t1"}, Options{})
			if err == nil || !strings.Contains(err.Error(), "No such file or directory: m") {
				t.Fatalf("err = %v", err)
			}
			if d := cmp.Diff([]string{"start command 'echo ok'", "finish command 'echo ok' (1)"}, f.events); d != "" {
				t.Errorf("events (-want +got):\n%s", d)
			}
			if len(f.calls) != 1 {
				t.Errorf("calls: %v", f.calls)
			}
			if tc.wantLine == 0 {
				return
			}
			var me *muster.Error
			if !errors.As(err, &me) || me.Kind != muster.KindInvalid {
				t.Fatalf("error %T %v", err, err)
			}
			if me.Details["file"] != p.File || me.Details["line"] != tc.wantLine {
				t.Errorf("details = %v, want file %s line %d", me.Details, p.File, tc.wantLine)
			}
			if !strings.HasPrefix(me.Msg, p.File+":"+strconv.Itoa(tc.wantLine)+": ") {
				t.Errorf("message %q does not start with the file and line", me.Msg)
			}
		})
	}
}

// TestLoadErrorDetails: a plan that does not load is muster's
// invalid-input error with the file and line in its details.
func TestLoadErrorDetails(t *testing.T) {
	path := filepath.Join(t.TempDir(), "p.yaml")
	if err := os.WriteFile(path, []byte("steps:\n  - command: ls\n    targets: all\n    bogus: 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := LoadFile("m::p", path)
	me := muster.AsError(err, "none")
	if me.Kind != muster.KindInvalid || me.Details["file"] != path || me.Details["line"] != 4 || !strings.Contains(me.Msg, "bogus") {
		t.Errorf("AsError(load error) = %+v", me)
	}
	var le *LoadError
	if !errors.As(err, &le) || le.Line != 4 {
		t.Errorf("errors.As LoadError: %v", err)
	}
}
