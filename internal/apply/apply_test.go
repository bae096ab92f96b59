package apply

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/muster-run/muster"
	"github.com/muster-run/muster/internal/action"
	"github.com/muster-run/muster/internal/transport/local"
)

// requirePuppet returns the puppet command, or skips the test without one
// (fails it when MUSTER_TEST_REQUIRE_PUPPET=1, as CI sets).
func requirePuppet(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("puppet")
	if err != nil {
		if os.Getenv("MUSTER_TEST_REQUIRE_PUPPET") == "1" {
			t.Fatal("puppet is not installed (apt-get install puppet), and MUSTER_TEST_REQUIRE_PUPPET=1")
		}
		t.Skip("puppet is not installed (apt-get install puppet); set MUSTER_TEST_REQUIRE_PUPPET=1 to fail instead")
	}
	return p
}

// counting counts the channels (Exec calls) of a transport.
type counting struct {
	muster.Transport
	execs atomic.Int64
}

func (c *counting) Exec(ctx context.Context, t *muster.Target, cmd *muster.Command) (int, error) {
	c.execs.Add(1)
	return c.Transport.Exec(ctx, t, cmd)
}

func localApplier(t *testing.T, modules map[string]string, keep bool) (*Applier, *counting, *muster.Target) {
	t.Helper()
	requirePuppet(t)
	c := &counting{Transport: local.New()}
	r := &action.Runner{Transports: map[string]muster.Transport{"local": c}}
	return &Applier{Runner: r, Modules: modules, Keep: keep}, c, &muster.Target{Name: "localhost", Transport: "local"}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func report(t *testing.T, res *muster.Result) map[string]any {
	t.Helper()
	rep, ok := res.Value["report"].(map[string]any)
	if !ok {
		t.Fatalf("no report in %+v (error %+v)", res.Value, res.Error)
	}
	return rep
}

// A manifest applied for real with puppet apply on this machine: a change,
// the same again (unchanged), noop, failing resources, and code that does
// not compile.
func TestApplyLocal(t *testing.T) {
	a, _, tg := localApplier(t, nil, false)
	ctx := context.Background()
	dir := t.TempDir()
	file := filepath.Join(dir, "motd")
	manifest, err := ResourcesManifest([]any{
		map[string]any{"file": file, "parameters": map[string]any{"content": "it's \"muster\" ${x}\n", "ensure": "file"}},
	})
	must(t, err)
	fileRes := "File[" + file + "]"

	res := a.Apply(ctx, tg, manifest, Options{Object: "motd.pp"}, action.Options{})
	if !res.OK() {
		t.Fatalf("first apply: %+v", res.Error)
	}
	rep := report(t, res)
	if rep["status"] != "changed" || !slices.Equal(Changed(rep), []string{fileRes}) || res.Action != "apply" || res.Object != "motd.pp" {
		t.Fatalf("first apply: status %v changed %v", rep["status"], Changed(rep))
	}
	if got, _ := os.ReadFile(file); string(got) != "it's \"muster\" ${x}\n" {
		t.Fatalf("file holds %q", got)
	}
	if out, _ := res.Value["_output"].(string); !strings.HasPrefix(out, "changed: 1, failed: 0, unchanged: ") {
		t.Errorf("_output %q", out)
	}

	res = a.Apply(ctx, tg, manifest, Options{}, action.Options{})
	rep = report(t, res)
	if !res.OK() || rep["status"] != "unchanged" || len(Changed(rep)) != 0 {
		t.Fatalf("second apply: %+v status %v changed %v", res.Error, rep["status"], Changed(rep))
	}

	changed := strings.Replace(manifest, "muster", "noop", 1)
	res = a.Apply(ctx, tg, changed, Options{Noop: true}, action.Options{})
	rep = report(t, res)
	if !res.OK() || rep["noop"] != true || rep["noop_pending"] != true || len(Changed(rep)) != 0 {
		t.Fatalf("noop apply: %+v report noop %v pending %v changed %v", res.Error, rep["noop"], rep["noop_pending"], Changed(rep))
	}
	if out, _ := res.Value["_output"].(string); !strings.HasSuffix(out, "noop: 1") {
		t.Errorf("noop _output %q", out)
	}
	if got, _ := os.ReadFile(file); !strings.Contains(string(got), "muster") {
		t.Fatalf("noop changed the file: %q", got)
	}

	bad := filepath.Join(dir, "missing", "dir", "x")
	failing := "file { " + Quote(bad) + ": content => 'x' }\n" +
		"file { " + Quote(filepath.Join(dir, "ok")) + ": content => 'x' }\n" +
		"exec { 'false': path => ['/bin', '/usr/bin'] }\n"
	res = a.Apply(ctx, tg, failing, Options{}, action.Options{})
	if res.OK() || res.Error.Kind != KindResourceFailure {
		t.Fatalf("failing apply: %+v", res.Error)
	}
	rep = report(t, res)
	if code := res.Error.Details["exit_code"]; code != 6 {
		t.Errorf("exit code %v, want 6 (changes and failures)", code)
	}
	if want := []string{"Exec[false]", "File[" + bad + "]"}; !slices.Equal(Failed(rep), want) || rep["status"] != "failed" {
		t.Errorf("failed %v status %v, want %v", Failed(rep), rep["status"], want)
	}
	for _, want := range []string{"Resources failed to apply for localhost", "\n  Exec[false]: change from 'notrun' to ['0'] failed", "\n  File[" + bad + "]: "} {
		if !strings.Contains(res.Error.Msg, want) {
			t.Errorf("message %q lacks %q", res.Error.Msg, want)
		}
	}

	res = a.Apply(ctx, tg, "nosuchtype { 'x': }\n", Options{}, action.Options{})
	if res.OK() || res.Error.Kind != KindApply || !strings.Contains(res.Error.Msg, "Unknown resource type: 'nosuchtype'") || res.Error.Details["exit_code"] != 1 {
		t.Fatalf("compile error: %+v", res.Error)
	}
	if strings.Contains(res.Error.Msg, "Facter") {
		t.Errorf("message carries Facter's noise: %q", res.Error.Msg)
	}
}

// writeModule writes modules/<name>/manifests/init.pp holding a class that
// manages a file.
func writeModule(t *testing.T, root, name, body string) string {
	t.Helper()
	dir := filepath.Join(root, name)
	must(t, os.MkdirAll(filepath.Join(dir, "manifests"), 0o755))
	must(t, os.MkdirAll(filepath.Join(dir, "spec", "fixtures"), 0o755))
	must(t, os.WriteFile(filepath.Join(dir, "spec", "fixtures", "big"), []byte("not uploaded"), 0o644))
	must(t, os.WriteFile(filepath.Join(dir, "manifests", "init.pp"), []byte(body), 0o644))
	return dir
}

// The module path travels with the first apply on a target and stays
// cached (Keep): later applies send only the manifest, a cache removed on
// the target costs one more channel, and Cleanup removes it.
func TestApplyModulesCached(t *testing.T) {
	mods := t.TempDir()
	dir := writeModule(t, mods, "demo", "class demo(String $path, String $text = 'from demo') {\n  file { $path: content => $text }\n}\n")
	a, c, tg := localApplier(t, map[string]string{"demo": dir}, true)
	tmp := t.TempDir()
	opts := action.Options{TmpDir: tmp}
	ctx := context.Background()
	out := filepath.Join(t.TempDir(), "out")
	apply := func(text string) {
		t.Helper()
		m := "class { 'demo': path => " + Quote(out) + ", text => " + Quote(text) + " }\n"
		res := a.Apply(ctx, tg, m, Options{}, opts)
		if !res.OK() {
			t.Fatalf("apply: %+v", res.Error)
		}
		if got, _ := os.ReadFile(out); string(got) != text {
			t.Fatalf("file holds %q, want %q", got, text)
		}
	}
	cacheDirs := func() []string {
		m, _ := filepath.Glob(filepath.Join(tmp, "muster-apply.*", "*"))
		return m
	}
	steps := []struct {
		name     string
		do       func()
		channels int64
		cached   int
	}{
		{"first apply sends the modules", func() { apply("one") }, 1, 1},
		{"second apply uses the cache", func() { apply("two") }, 1, 1},
		{"cache removed on the target", func() {
			for _, d := range cacheDirs() {
				must(t, os.RemoveAll(d))
			}
			apply("three")
		}, 2, 1},
		{"cleanup", func() { a.Cleanup(ctx) }, 1, 0},
	}
	for _, st := range steps {
		before := c.execs.Load()
		st.do()
		if got := c.execs.Load() - before; got != st.channels {
			t.Errorf("%s: %d channels, want %d", st.name, got, st.channels)
		}
		if got := len(cacheDirs()); got != st.cached {
			t.Errorf("%s: %d cached module paths, want %d", st.name, got, st.cached)
		}
	}
	b, err := a.modules()
	must(t, err)
	if strings.Contains(string(b.data), "not uploaded") {
		t.Error("the module's spec/ directory was packed")
	}
}

// Without Keep the modules go beside the manifest and leave nothing behind.
func TestApplyModulesEphemeral(t *testing.T) {
	mods := t.TempDir()
	dir := writeModule(t, mods, "demo", "class demo(String $path) {\n  file { $path: content => 'eph' }\n}\n")
	a, c, tg := localApplier(t, map[string]string{"demo": dir}, false)
	tmp := t.TempDir()
	out := filepath.Join(t.TempDir(), "out")
	res := a.Apply(context.Background(), tg, "class { 'demo': path => "+Quote(out)+" }\n", Options{}, action.Options{TmpDir: tmp})
	if !res.OK() {
		t.Fatalf("apply: %+v", res.Error)
	}
	if got, _ := os.ReadFile(out); string(got) != "eph" || c.execs.Load() != 1 {
		t.Fatalf("file %q after %d channels", got, c.execs.Load())
	}
	if left, _ := os.ReadDir(tmp); len(left) != 0 {
		t.Errorf("left behind in tmpdir: %v", left)
	}
}

func TestPackModulesDeterministic(t *testing.T) {
	mods := t.TempDir()
	d1 := writeModule(t, mods, "a", "class a {}\n")
	d2 := writeModule(t, mods, "b", "class b {}\n")
	x, err := packModules(map[string]string{"a": d1, "b": d2})
	must(t, err)
	y, err := packModules(map[string]string{"b": d2, "a": d1})
	must(t, err)
	if x.hash != y.hash {
		t.Fatalf("hashes differ: %s %s", x, y)
	}
	must(t, os.WriteFile(filepath.Join(d2, "manifests", "init.pp"), []byte("class b { }\n"), 0o644))
	z, err := packModules(map[string]string{"a": d1, "b": d2})
	must(t, err)
	if z.hash == x.hash {
		t.Fatal("a changed module kept its hash")
	}
}
