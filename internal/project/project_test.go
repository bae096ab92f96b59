package project

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func write(t *testing.T, path, text string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestFindDir(t *testing.T) {
	root := t.TempDir()
	deep := filepath.Join(root, "a", "b")
	if err := os.MkdirAll(deep, 0o755); err != nil {
		t.Fatal(err)
	}
	if got := FindDir(deep); got != deep {
		t.Errorf("FindDir without a marker = %s, want the start %s", got, deep)
	}
	write(t, filepath.Join(root, "bolt-project.yaml"), "name: x\n")
	if got := FindDir(deep); got != root {
		t.Errorf("FindDir = %s, want %s (bolt-project.yaml)", got, root)
	}
	write(t, filepath.Join(root, "a", "muster-project.yaml"), "name: y\n")
	if got := FindDir(deep); got != filepath.Join(root, "a") {
		t.Errorf("FindDir = %s, want the nearest marker", got)
	}
}

func TestOptionsDefaults(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name    string
		o       Options
		inv     string
		modules []string
	}{
		{"no inventory", Options{Dir: dir}, "", []string{filepath.Join(dir, "modules"), filepath.Join(dir, "site-modules")}},
		{"explicit", Options{Dir: dir, InventoryFile: "/x/inv.yaml", ModulePath: []string{"/m"}}, "/x/inv.yaml", []string{"/m"}},
		{"built-in last", Options{Dir: dir, Builtin: "/b"}, "", []string{filepath.Join(dir, "modules"), filepath.Join(dir, "site-modules"), "/b"}},
		{"built-in after --modulepath", Options{Dir: dir, ModulePath: []string{"/m", "/n"}, Builtin: "/b"}, "", []string{"/m", "/n", "/b"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.o.InventoryPath()
			if err != nil || got != tc.inv {
				t.Errorf("InventoryPath() = %q, %v; want %q", got, err, tc.inv)
			}
			if m := tc.o.Modules(); strings.Join(m, ":") != strings.Join(tc.modules, ":") {
				t.Errorf("Modules() = %v, want %v", m, tc.modules)
			}
			// The built-in modules change only with muster: never watched.
			_, trees := tc.o.Watched()
			want := tc.modules
			if tc.o.Builtin != "" {
				want = want[:len(want)-1]
			}
			if strings.Join(trees, ":") != strings.Join(want, ":") {
				t.Errorf("Watched() trees = %v, want %v", trees, want)
			}
		})
	}
	write(t, filepath.Join(dir, "inventory.yaml"), "targets: [a]\n")
	if got, _ := (Options{Dir: dir}).InventoryPath(); got != filepath.Join(dir, "inventory.yaml") {
		t.Errorf("InventoryPath() = %q once the file exists", got)
	}
}

// A reload that fails keeps the project in use; one that works swaps it.
func TestLiveReload(t *testing.T) {
	dir := t.TempDir()
	inv := filepath.Join(dir, "inventory.yaml")
	write(t, inv, "targets: [a, b]\n")
	write(t, filepath.Join(dir, "modules", "m", "tasks", "t.sh"), "#!/bin/sh\necho hi\n")
	l, err := NewLive(Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	first := l.Current()
	if n := len(first.Inventory.Targets()); n != 2 || first.InventoryFile != inv {
		t.Fatalf("loaded %d targets from %q", n, first.InventoryFile)
	}
	if _, err := first.Tasks.Get("m::t"); err != nil {
		t.Errorf("task m::t: %v", err)
	}
	write(t, inv, "targets: [a, b\n")
	if _, err := l.Reload(); err == nil || !strings.Contains(err.Error(), "inventory.yaml:") {
		t.Errorf("broken reload: err = %v, want one naming inventory.yaml and its line", err)
	}
	if l.Current() != first {
		t.Error("a failed reload replaced the project")
	}
	write(t, inv, "targets: [a, b, c]\n")
	p, err := l.Reload()
	if err != nil || l.Current() != p || len(p.Inventory.Targets()) != 3 {
		t.Errorf("reload: %v; current has %d targets", err, len(l.Current().Inventory.Targets()))
	}
	if len(first.Inventory.Targets()) != 2 {
		t.Error("the old project changed under its holder")
	}
}
