package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestProjectInit(t *testing.T) {
	tests := []struct {
		name    string
		dirName string
		args    []string
		before  map[string]string // files present before
		code    int
		project string // the name written, "" when refused
		want    string // in the output
	}{
		{"name from the directory", "webfarm", nil, nil, 0, "webfarm", "Created muster project webfarm"},
		{"given name", "Some Dir", []string{"ops_2"}, nil, 0, "ops_2", "modules/ops_2/"},
		{"existing inventory kept", "keep", nil, map[string]string{"inventory.yaml": "targets: [a.example]\n"}, 0, "keep", "Created"},
		{"invalid name", "x", []string{"Ops"}, nil, 2, "", `project name "Ops" is invalid`},
		{"name starting with a digit", "x", []string{"1ops"}, nil, 2, "", "must start with a lowercase letter"},
		{"invalid directory name", "My-Project", nil, nil, 2, "", "muster project init NAME"},
		{"existing muster project", "p", nil, map[string]string{"muster-project.yaml": "name: old\n"}, 2, "", "muster-project.yaml already exists"},
		{"existing bolt project", "p", nil, map[string]string{"bolt-project.yaml": "name: old\n"}, 2, "", "bolt-project.yaml already exists"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), tc.dirName)
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			for f, c := range tc.before {
				os.WriteFile(filepath.Join(dir, f), []byte(c), 0o644)
			}
			code, out, errOut := cli(t, append([]string{"project", "init", "--project", dir}, tc.args...)...)
			if code != tc.code || !strings.Contains(out+errOut, tc.want) {
				t.Fatalf("exit %d (want %d), output lacks %q\n%s\n%s", code, tc.code, tc.want, out, errOut)
			}
			for f, c := range tc.before { // never overwritten
				if b, _ := os.ReadFile(filepath.Join(dir, f)); string(b) != c {
					t.Errorf("%s changed to %q", f, b)
				}
			}
			if tc.project == "" {
				if _, err := os.Stat(filepath.Join(dir, "modules")); err == nil {
					t.Error("a refused init wrote the module skeleton")
				}
				return
			}
			b, err := os.ReadFile(filepath.Join(dir, "muster-project.yaml"))
			if err != nil || !strings.Contains(string(b), "\nname: "+tc.project+"\n") {
				t.Errorf("muster-project.yaml = %q, %v", b, err)
			}
			for _, sub := range []string{"tasks", "plans", "files"} {
				if fi, err := os.Stat(filepath.Join(dir, "modules", tc.project, sub)); err != nil || !fi.IsDir() {
					t.Errorf("modules/%s/%s: %v", tc.project, sub, err)
				}
			}
			if gi, _ := os.ReadFile(filepath.Join(dir, ".gitignore")); !strings.Contains(string(gi), ".rerun.json") {
				t.Errorf(".gitignore = %q", gi)
			}
			// The new project works: its inventory parses, its module path
			// lists, and the project is found from a subdirectory.
			if code, out, errOut := cli(t, "inventory", "show", "--project", dir); code != 0 {
				t.Errorf("inventory show: exit %d\n%s\n%s", code, out, errOut)
			}
			if code, out, errOut := cli(t, "task", "show", "--project", dir); code != 0 || !strings.Contains(out, filepath.Join(dir, "modules")) {
				t.Errorf("task show: exit %d\n%s\n%s", code, out, errOut)
			}
		})
	}
}

// TestProjectInitExampleInventory: the example inventory's commented
// config, uncommented, is a valid inventory.
func TestProjectInitExampleInventory(t *testing.T) {
	var b strings.Builder
	for _, line := range strings.Split(projectInventoryTemplate, "\n") {
		if strings.HasPrefix(line, "# ") && (strings.HasPrefix(line, "#  ") || strings.HasPrefix(line, "# groups:") || strings.HasPrefix(line, "# config:")) {
			b.WriteString(strings.TrimPrefix(line, "# ") + "\n")
		}
	}
	dir := t.TempDir()
	inv := filepath.Join(dir, "inventory.yaml")
	os.WriteFile(inv, []byte(b.String()), 0o644)
	os.WriteFile(filepath.Join(dir, "known_hosts"), nil, 0o644)
	t.Setenv("DEPLOY_PASSWORD", "x")
	code, out, errOut := cli(t, "inventory", "show", "-i", inv, "-t", "all")
	if code != 0 || !strings.Contains(out, "web2.example.com") || !strings.Contains(out, "db1") {
		t.Fatalf("exit %d\n%s\n%s\n%s", code, b.String(), out, errOut)
	}
}
