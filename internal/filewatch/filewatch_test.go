package filewatch

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

func TestRelevant(t *testing.T) {
	m := newMatcher(Spec{Files: []string{"/p/inventory.yaml"}, Trees: []string{"/p/modules", "/q/site"}})
	for _, tc := range []struct {
		path string
		want bool
	}{
		{"/p/inventory.yaml", true},
		{"/p/other.yaml", false},
		{"/p/inventory.yaml.swp", false},
		{"/p/modules", true}, // the tree itself appears or goes
		{"/p/modules/web/tasks/init.json", true},
		{"/p/modules/web/tasks/.init.json.swp", false},
		{"/p/modules/web/tasks/init.json~", false},
		{"/p/modules/.git/index", false},
		{"/p/modules/web/.git/HEAD", false},
		{"/p/modulesx/a", false},
		{"/q/site/x/plans/deploy.yaml", true},
		{"/q", false},
		{"/", false},
	} {
		if got := m.relevant(tc.path); got != tc.want {
			t.Errorf("relevant(%q) = %v, want %v", tc.path, got, tc.want)
		}
	}
}

// watch runs Run on s in the background and returns a channel that gets
// a value per callback. The watch stops at the test's end.
func watch(t *testing.T, s Spec) <-chan struct{} {
	t.Helper()
	s.Debounce = 20 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	calls := make(chan struct{}, 100)
	done := make(chan error, 1)
	ready := make(chan struct{})
	go func() {
		close(ready)
		done <- Run(ctx, s, func() { calls <- struct{}{} }, func(err error) { t.Logf("warning: %v", err) })
	}()
	<-ready
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	time.Sleep(100 * time.Millisecond) // let Run add its watches before the test changes files
	return calls
}

// expectCall waits for a callback (a hang guard, not a speed check).
func expectCall(t *testing.T, calls <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-calls:
	case <-time.After(30 * time.Second):
		t.Fatalf("no callback after %s", what)
	}
}

func write(t *testing.T, path, text string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestRunSeesChanges(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(t *testing.T, dir string)
	}{
		{"file written in place", func(t *testing.T, dir string) {
			write(t, filepath.Join(dir, "inventory.yaml"), "targets: [b]\n")
		}},
		{"file replaced by a rename, as editors save", func(t *testing.T, dir string) {
			tmp := filepath.Join(dir, ".inventory.yaml.tmp")
			write(t, tmp, "targets: [c]\n")
			if err := os.Rename(tmp, filepath.Join(dir, "inventory.yaml")); err != nil {
				t.Fatal(err)
			}
		}},
		{"file in a tree", func(t *testing.T, dir string) {
			write(t, filepath.Join(dir, "modules/web/tasks/init.json"), "{}")
		}},
		{"file in a directory created in a tree after the start", func(t *testing.T, dir string) {
			write(t, filepath.Join(dir, "modules/new/tasks/a.sh"), "true") // creates modules/new/tasks
		}},
		{"tree created after the start", func(t *testing.T, dir string) {
			write(t, filepath.Join(dir, "site-modules/x/plans/p.yaml"), "steps: []")
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			write(t, filepath.Join(dir, "inventory.yaml"), "targets: [a]\n")
			write(t, filepath.Join(dir, "modules/web/tasks/init.sh"), "true")
			calls := watch(t, Spec{Files: []string{filepath.Join(dir, "inventory.yaml")},
				Trees: []string{filepath.Join(dir, "modules"), filepath.Join(dir, "site-modules")}})
			tc.change(t, dir)
			expectCall(t, calls, tc.name)
		})
	}
}

// A directory created inside a tree is watched too: a later change in it
// is seen.
func TestRunWatchesNewDirectories(t *testing.T) {
	dir := t.TempDir()
	calls := watch(t, Spec{Trees: []string{filepath.Join(dir, "modules")}})
	write(t, filepath.Join(dir, "modules/web/tasks/a.json"), "{}")
	expectCall(t, calls, "creating modules/web/tasks")
	time.Sleep(100 * time.Millisecond) // the burst's stragglers, if any, are not the change below
	for len(calls) > 0 {
		<-calls
	}
	write(t, filepath.Join(dir, "modules/web/tasks/a.json"), `{"description": "x"}`)
	expectCall(t, calls, "changing a file in a new directory")
}

// RunPaths names what changed: a watched file by its name, even when an
// editor replaced it by a rename, or one that did not exist at the start.
func TestRunPathsNamesChanges(t *testing.T) {
	dir := t.TempDir()
	sudoers := filepath.Join(dir, "sudoers")
	later := filepath.Join(dir, "not-yet")
	write(t, sudoers, "root ALL=(ALL) ALL\n")
	got := make(chan []string, 10)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- RunPaths(ctx, Spec{Files: []string{sudoers, later}, Debounce: 50 * time.Millisecond},
			func(p []string) { got <- p }, func(err error) { t.Log(err) })
	}()
	t.Cleanup(func() { cancel(); <-done })
	time.Sleep(100 * time.Millisecond) // let the watch start
	tmp := filepath.Join(dir, ".sudoers.tmp")
	write(t, tmp, "root ALL=(ALL) NOPASSWD: ALL\n")
	if err := os.Rename(tmp, sudoers); err != nil {
		t.Fatal(err)
	}
	if p := <-got; !slices.Contains(p, sudoers) {
		t.Errorf("paths = %v, want %s among them", p, sudoers)
	}
	write(t, later, "x")
	if p := <-got; len(p) != 1 || p[0] != later {
		t.Errorf("paths = %v, want [%s]", p, later)
	}
}
