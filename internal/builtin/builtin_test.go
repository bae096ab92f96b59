package builtin

import (
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/muster-run/muster/internal/task"
)

// A child process of the test binary calls Dir on MUSTER_BUILTIN_DIR and
// prints the result, to race real processes against each other.
func TestMain(m *testing.M) {
	if parent := os.Getenv("MUSTER_BUILTIN_CHILD_PARENT"); parent != "" {
		dir, err := Dir(parent)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Println(dir)
		os.Exit(0)
	}
	code := m.Run()
	if shared.dir != "" {
		os.RemoveAll(filepath.Dir(shared.dir))
	}
	os.Exit(code)
}

// shared is one copy of the modules for the tests that run tasks. Its
// parent is made with os.MkdirTemp (mode 0755 below /tmp), so that sshd's
// login user could read it too.
var shared struct {
	once sync.Once
	dir  string
	err  error
}

func builtinDir(t *testing.T) string {
	t.Helper()
	shared.once.Do(func() {
		parent, err := os.MkdirTemp("", "muster-builtin-test-")
		if err != nil {
			shared.err = err
			return
		}
		shared.dir, shared.err = Dir(parent)
	})
	if shared.err != nil {
		t.Fatal(shared.err)
	}
	return shared.dir
}

func TestModules(t *testing.T) {
	if got, want := Modules(), []string{"facts", "muster_common", "package", "reboot", "service"}; !slices.Equal(got, want) {
		t.Errorf("Modules() = %v, want %v", got, want)
	}
}

// Dir writes every embedded file with its mode into a directory named by
// the content hash, dirs 0755 whatever the umask, and a second call
// finds it in place.
func TestDirWritesContentAddressedCopy(t *testing.T) {
	parent := filepath.Join(t.TempDir(), "cache", "muster", "builtin")
	dir, err := Dir(parent)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := dir, filepath.Join(parent, Hash()[:hashLen]); got != want {
		t.Fatalf("Dir = %s, want %s", got, want)
	}
	for _, f := range files() {
		p := filepath.Join(dir, filepath.FromSlash(f.rel))
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != f.mode {
			t.Errorf("%s: mode %o, want %o", f.rel, st.Mode().Perm(), f.mode)
		}
		data, err := os.ReadFile(p)
		if err != nil || string(data) != string(f.data) {
			t.Errorf("%s: content differs from the embedded file (%v)", f.rel, err)
		}
	}
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return err
		}
		st, err := os.Stat(p)
		if err == nil && st.Mode().Perm() != 0o755 {
			t.Errorf("directory %s: mode %o, want 755", p, st.Mode().Perm())
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, exe := range []string{"package/tasks/init.sh", "reboot/tasks/last_boot_time.sh"} {
		if st, _ := os.Stat(filepath.Join(dir, exe)); st == nil || st.Mode().Perm() != 0o755 {
			t.Errorf("%s is not 0755", exe)
		}
	}
	again, err := Dir(parent)
	if err != nil || again != dir {
		t.Fatalf("second Dir = %s, %v; want %s", again, err, dir)
	}
	entries, _ := os.ReadDir(parent)
	if len(entries) != 1 {
		t.Errorf("%s holds %d entries after two calls, want 1 (no temporary directories left)", parent, len(entries))
	}
}

// A copy edited or truncated by hand is replaced by a good one.
func TestDirRepairsDamagedCopy(t *testing.T) {
	parent := t.TempDir()
	dir, err := Dir(parent)
	if err != nil {
		t.Fatal(err)
	}
	for _, damage := range []struct {
		name string
		do   func(p string) error
	}{
		{"edited", func(p string) error { return os.WriteFile(p, []byte("#!/bin/sh\necho hacked\n"), 0o755) }},
		{"removed", os.Remove},
		{"not executable", func(p string) error { return os.Chmod(p, 0o644) }},
	} {
		t.Run(damage.name, func(t *testing.T) {
			p := filepath.Join(dir, "package", "tasks", "init.sh")
			if err := damage.do(p); err != nil {
				t.Fatal(err)
			}
			if intact(dir) {
				t.Fatal("intact reports a damaged copy as intact")
			}
			got, err := Dir(parent)
			if err != nil || got != dir {
				t.Fatalf("Dir = %s, %v", got, err)
			}
			if !intact(dir) {
				t.Fatal("the copy is still damaged after Dir")
			}
		})
	}
	entries, _ := os.ReadDir(parent)
	if len(entries) != 1 {
		t.Errorf("%s holds %d entries, want 1", parent, len(entries))
	}
}

// Goroutines and separate processes racing to write the same copy all
// get the same complete directory.
func TestDirConcurrent(t *testing.T) {
	parent := filepath.Join(t.TempDir(), "builtin")
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	const n = 4
	var wg sync.WaitGroup
	got := make([]string, 2*n)
	errs := make([]error, 2*n)
	for i := range n {
		wg.Add(2)
		go func() {
			defer wg.Done()
			got[i], errs[i] = Dir(parent)
		}()
		go func() {
			defer wg.Done()
			cmd := exec.Command(exe, "-test.run=^$")
			cmd.Env = append(os.Environ(), "MUSTER_BUILTIN_CHILD_PARENT="+parent)
			out, err := cmd.Output()
			got[n+i], errs[n+i] = strings.TrimSpace(string(out)), err
		}()
	}
	wg.Wait()
	want := filepath.Join(parent, Hash()[:hashLen])
	for i := range got {
		if errs[i] != nil || got[i] != want {
			t.Errorf("caller %d: %q, %v; want %q", i, got[i], errs[i], want)
		}
	}
	if !intact(want) {
		t.Error("the copy is not intact")
	}
	entries, _ := os.ReadDir(parent)
	if len(entries) != 1 {
		t.Errorf("%s holds %d entries, want 1", parent, len(entries))
	}
}

// Path writes into the user cache directory ($XDG_CACHE_HOME).
func TestPathUsesUserCache(t *testing.T) {
	cache := t.TempDir()
	t.Setenv("XDG_CACHE_HOME", cache)
	dir, err := Path()
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(cache, "muster", "builtin", Hash()[:hashLen]); dir != want {
		t.Errorf("Path = %s, want %s", dir, want)
	}
	// A copy removed while the process runs (a cache cleaner) is written
	// again by the next call, and a new cache directory is followed.
	must(t, os.RemoveAll(dir))
	if again, err := Path(); err != nil || again != dir || !intact(dir) {
		t.Errorf("Path after the copy was removed = %s, %v (intact %v)", again, err, intact(dir))
	}
	other := t.TempDir()
	t.Setenv("XDG_CACHE_HOME", other)
	if moved, err := Path(); err != nil || moved != filepath.Join(other, "muster", "builtin", Hash()[:hashLen]) {
		t.Errorf("Path with a new XDG_CACHE_HOME = %s, %v", moved, err)
	}
}

func TestCheckPrivate(t *testing.T) {
	base := t.TempDir()
	good := filepath.Join(base, "good")
	open := filepath.Join(base, "open")
	link := filepath.Join(base, "link")
	must(t, os.Mkdir(good, 0o700))
	must(t, os.Mkdir(open, 0o700))
	must(t, os.Chmod(open, 0o777))
	must(t, os.Symlink(good, link))
	for _, tc := range []struct {
		dir, wantErr string
	}{
		{good, ""},
		{open, "can be written by other users"},
		{link, "is not a directory"},
	} {
		err := checkPrivate(tc.dir)
		if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
			t.Errorf("checkPrivate(%s) = %v, want %q", tc.dir, err, tc.wantErr)
		}
	}
}

// The built-in modules go last on the module path: a project's module of
// the same name wins, and the other built-in tasks stay visible.
func TestProjectModuleWins(t *testing.T) {
	dir := builtinDir(t)
	project := t.TempDir()
	tasks := filepath.Join(project, "package", "tasks")
	must(t, os.MkdirAll(tasks, 0o755))
	must(t, os.WriteFile(filepath.Join(tasks, "init.sh"), []byte("#!/bin/sh\necho '{\"mine\": true}'\n"), 0o755))
	idx, err := task.Find([]string{project, dir})
	if err != nil {
		t.Fatal(err)
	}
	pkg, err := idx.Get("package")
	if err != nil {
		t.Fatal(err)
	}
	if pkg.Dir != filepath.Join(project, "package") {
		t.Errorf("task package comes from %s, want the project's module", pkg.Dir)
	}
	for _, name := range []string{"service", "facts", "reboot", "reboot::last_boot_time"} {
		tk, err := idx.Get(name)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if !strings.HasPrefix(tk.Dir, dir) {
			t.Errorf("%s comes from %s, want the built-in modules", name, tk.Dir)
		}
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
