package builtin

import (
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/muster-run/muster/internal/plan"
	"github.com/muster-run/muster/internal/task"
)

// boltParams lists, per task, the parameters Bolt's own modules document
// (puppetlabs-package, -service, -facts and -reboot task metadata) with
// the types they declare there, and muster's additions.
var boltParams = map[string]struct {
	bolt   map[string]string // name -> Bolt's type
	muster map[string]string // muster's additions
}{
	"package/tasks/init.json": {
		bolt: map[string]string{
			"action":          "Enum[install, status, uninstall, upgrade]",
			"name":            "String[1]",
			"version":         "Optional[String[1]]",
			"manager_options": "Optional[String[1]]",
			"provider":        "Optional[String[1]]",
		},
		muster: map[string]string{"manager": "Optional[Enum[apt, dnf, yum]]"},
	},
	"service/tasks/init.json": {
		bolt: map[string]string{
			"action":   "Enum[start, stop, restart, enable, disable, status]",
			"name":     "String[1]",
			"force":    "Optional[Boolean]",
			"provider": "Optional[String[1]]",
		},
		muster: map[string]string{"manager": "Optional[Enum[systemd, sysvinit]]"},
	},
	"facts/tasks/init.json": {bolt: map[string]string{}},
	"reboot/tasks/init.json": {
		bolt: map[string]string{
			"timeout": "Optional[Variant[Pattern[/^[0-9]*$/],Integer]]",
			"message": "Optional[Pattern[/^[^|&]*$/]]",
		},
	},
	"reboot/tasks/last_boot_time.json": {bolt: map[string]string{}},
}

// Every metadata file parses with muster's parser, without warnings, and
// declares exactly Bolt's parameters (same types) plus muster's.
func TestMetadataHasBoltParameters(t *testing.T) {
	seen := 0
	err := fs.WalkDir(FS(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || path.Ext(p) != ".json" {
			return err
		}
		seen++
		t.Run(p, func(t *testing.T) {
			data, err := fs.ReadFile(FS(), p)
			if err != nil {
				t.Fatal(err)
			}
			md, warns, err := task.ParseMetadata(p, data)
			if err != nil {
				t.Fatal(err)
			}
			if len(warns) > 0 {
				t.Errorf("warnings: %v", warns)
			}
			if md.Description == "" {
				t.Error("no description")
			}
			if md.InputMethod != task.InputEnvironment {
				t.Errorf("input_method %q, want environment (the scripts read PT_ variables)", md.InputMethod)
			}
			want, ok := boltParams[p]
			if !ok {
				t.Fatalf("no expected parameters for %s in boltParams", p)
			}
			if md.Parameters == nil {
				t.Fatal(`no "parameters" key: the task would accept anything unchecked`)
			}
			all := map[string]string{}
			for k, v := range want.bolt {
				all[k] = v
			}
			for k, v := range want.muster {
				all[k] = v
			}
			for name, typ := range all {
				param, ok := md.Parameters[name]
				if !ok {
					t.Errorf("parameter %s is missing", name)
					continue
				}
				if param.TypeString != typ {
					t.Errorf("parameter %s: type %q, want %q", name, param.TypeString, typ)
				}
				if param.Description == "" {
					t.Errorf("parameter %s has no description", name)
				}
			}
			for name := range md.Parameters {
				if _, ok := all[name]; !ok {
					t.Errorf("parameter %s is neither Bolt's nor listed as muster's", name)
				}
			}
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if seen != len(boltParams) {
		t.Errorf("%d metadata files, want %d", seen, len(boltParams))
	}
}

// The documented invocations validate against the metadata, and bad
// ones fail validation naming the parameter.
func TestMetadataValidation(t *testing.T) {
	idx, err := task.Find([]string{builtinDir(t)})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		task    string
		params  map[string]any
		wantErr string
	}{
		{"package", map[string]any{"action": "status", "name": "nginx"}, ""},
		{"package", map[string]any{"action": "install", "name": "nginx", "version": "1.22.1-9", "manager_options": "--no-install-recommends"}, ""},
		{"package", map[string]any{"action": "status", "name": "vim", "provider": "yum"}, ""},
		{"package", map[string]any{"action": "purge", "name": "nginx"}, "action"},
		{"package", map[string]any{"action": "status"}, "name"},
		{"package", map[string]any{"action": "status", "name": "x", "manager": "zypper"}, "manager"},
		{"service", map[string]any{"action": "restart", "name": "nginx"}, ""},
		{"service", map[string]any{"action": "status", "name": "nginx", "force": true, "manager": "sysvinit"}, ""},
		{"service", map[string]any{"action": "reload", "name": "nginx"}, "action"},
		{"service", map[string]any{"action": "status", "name": ""}, "name"},
		{"facts", map[string]any{}, ""},
		{"reboot", map[string]any{}, ""},
		{"reboot", map[string]any{"timeout": 30, "message": "kernel update"}, ""},
		{"reboot", map[string]any{"timeout": "30"}, ""},
		{"reboot", map[string]any{"timeout": "soon"}, "timeout"},
		{"reboot", map[string]any{"message": "a | b"}, "message"},
		{"reboot::last_boot_time", map[string]any{}, ""},
	} {
		tk, err := idx.Get(tc.task)
		if err != nil {
			t.Fatalf("%s: %v", tc.task, err)
		}
		_, err = tk.Metadata.Validate(tc.task, tc.params)
		switch {
		case tc.wantErr == "" && err != nil:
			t.Errorf("%s %v: %v", tc.task, tc.params, err)
		case tc.wantErr != "" && err == nil:
			t.Errorf("%s %v: validated, want an error about %s", tc.task, tc.params, tc.wantErr)
		case tc.wantErr != "" && !strings.Contains(err.Error(), tc.wantErr):
			t.Errorf("%s %v: error %q does not name %s", tc.task, tc.params, err, tc.wantErr)
		}
	}
}

// helpers is the shared helper file every task ships and sources.
const helpers = "muster_common/files/common.sh"

// helperFuncs are the functions common.sh defines: no task defines them
// again (the helpers live in one place, so a fix to one reaches all).
var helperFuncs = []string{"json_str", "fail", "run", "fail_cmd", "init_pid1", "check_word", "pick_manager"}

// Every script is POSIX sh (parsed by dash and sh); every task is a
// #!/bin/sh script that lists the shared helpers in its metadata's files
// and sources them from $PT__installdir, and defines none of them itself.
func TestScriptsArePOSIXAndShareHelpers(t *testing.T) {
	dir := builtinDir(t)
	common, err := fs.ReadFile(FS(), helpers)
	if err != nil {
		t.Fatal(err)
	}
	for _, fn := range helperFuncs {
		if !strings.Contains(string(common), "\n"+fn+"() {") {
			t.Errorf("%s does not define %s", helpers, fn)
		}
	}
	tasks := 0
	err = fs.WalkDir(FS(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || path.Ext(p) != ".sh" {
			return err
		}
		for _, shell := range []string{"dash", "sh"} {
			if _, err := exec.LookPath(shell); err != nil {
				continue
			}
			if out, err := exec.Command(shell, "-n", dir+"/"+p).CombinedOutput(); err != nil {
				t.Errorf("%s -n %s: %v\n%s", shell, p, err, out)
			}
		}
		if p == helpers {
			return nil
		}
		tasks++
		data, err := fs.ReadFile(FS(), p)
		if err != nil {
			return err
		}
		s := string(data)
		if !strings.HasPrefix(s, "#!/bin/sh\n") {
			t.Errorf("%s does not start with #!/bin/sh", p)
		}
		if !strings.Contains(s, `}/`+helpers+`"`) || !strings.Contains(s, `. "${PT__installdir`) {
			t.Errorf("%s does not source $PT__installdir/%s", p, helpers)
		}
		for _, fn := range helperFuncs {
			if strings.Contains(s, "\n"+fn+"() {") {
				t.Errorf("%s defines %s again: use the one in %s", p, fn, helpers)
			}
		}
		meta, err := fs.ReadFile(FS(), strings.TrimSuffix(p, ".sh")+".json")
		if err != nil {
			return err
		}
		md, _, err := task.ParseMetadata(p, meta)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Contains(md.Files, helpers) {
			t.Errorf("%s's metadata does not list %s in files: %v", p, helpers, md.Files)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if tasks == 0 {
		t.Fatal("no task scripts found")
	}
}

// Run without its files (outside muster or Bolt), a task says what it
// needs and fails, rather than running without its helpers.
func TestTaskWithoutInstallDir(t *testing.T) {
	cmd := exec.Command("sh", filepath.Join(builtinDir(t), "facts", "tasks", "init.sh"))
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "PT__installdir") || !strings.Contains(string(out), "run this task with muster or Bolt") {
		t.Errorf("without PT__installdir: %v\n%s", err, out)
	}
}

// The reboot README's plan, which shows how to wait for the targets, is
// a Starlark plan that muster loads (its syntax and every name it uses).
func TestRebootReadmePlanLoads(t *testing.T) {
	data, err := fs.ReadFile(FS(), "reboot/README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(data), "```python\n")
	code, _, ok2 := strings.Cut(rest, "```")
	if !ok || !ok2 {
		t.Fatal("no python code block in reboot/README.md")
	}
	file := filepath.Join(t.TempDir(), "reboot_and_wait.star")
	if err := os.WriteFile(file, []byte(code), 0o644); err != nil {
		t.Fatal(err)
	}
	p, err := plan.LoadFile("mymod::reboot_and_wait", file)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Parameters) != 3 {
		t.Errorf("plan has %d parameters, want targets, reconnect_timeout and disconnect_wait", len(p.Parameters))
	}
}
