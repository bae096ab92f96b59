package action

import (
	"archive/tar"
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/muster-run/muster"
	"github.com/muster-run/muster/internal/task"
	"github.com/muster-run/muster/internal/transport/local"
)

// counting wraps a transport and counts Exec calls (one per channel).
type counting struct {
	muster.Transport
	execs atomic.Int64
	mu    sync.Mutex
	lines []string
}

func (c *counting) Exec(ctx context.Context, t *muster.Target, cmd *muster.Command) (int, error) {
	c.execs.Add(1)
	c.mu.Lock()
	c.lines = append(c.lines, cmd.Line)
	c.mu.Unlock()
	return c.Transport.Exec(ctx, t, cmd)
}

// Release passes on to the transport, when it keeps per-target state.
func (c *counting) Release(t *muster.Target) {
	if r, ok := c.Transport.(interface{ Release(*muster.Target) }); ok {
		r.Release(t)
	}
}

func localRunner(t *testing.T) (*Runner, *counting, *muster.Target) {
	t.Helper()
	c := &counting{Transport: local.New()}
	tg := &muster.Target{Name: "localhost", Transport: "local", Config: map[string]any{"local": map[string]any{"tmpdir": t.TempDir()}}}
	return &Runner{Transports: map[string]muster.Transport{"local": c}}, c, tg
}

func TestCommand(t *testing.T) {
	tests := []struct {
		name     string
		line     string
		env      map[string]string
		wantOut  string
		wantErr  string
		wantCode int
		wantKind string
	}{
		{name: "ok", line: "echo hello", wantOut: "hello\n"},
		{name: "stderr and exit", line: "echo oops >&2; exit 3", wantCode: 3, wantKind: muster.KindCommand, wantErr: "oops\n"},
		{name: "env var quoted", line: `printf '%s' "$GREETING"`, env: map[string]string{"GREETING": "it's a 'test' $HOME"}, wantOut: "it's a 'test' $HOME"},
		{name: "bad env name", line: "true", env: map[string]string{"1BAD": "x"}, wantKind: muster.KindInvalid, wantCode: -99},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, _, tg := localRunner(t)
			res := r.Command(context.Background(), tg, tc.line, Options{Env: tc.env})
			if tc.wantKind != "" {
				if res.OK() || res.Error.Kind != tc.wantKind {
					t.Fatalf("error = %+v, want kind %s", res.Error, tc.wantKind)
				}
			} else if !res.OK() {
				t.Fatalf("unexpected failure: %+v", res.Error)
			}
			if tc.wantCode == -99 {
				return
			}
			if got := res.Value["stdout"]; got != tc.wantOut {
				t.Errorf("stdout = %q, want %q", got, tc.wantOut)
			}
			if got := res.Value["stderr"]; got != tc.wantErr {
				t.Errorf("stderr = %q, want %q", got, tc.wantErr)
			}
			if got := res.Value["exit_code"]; got != tc.wantCode {
				t.Errorf("exit_code = %v, want %d", got, tc.wantCode)
			}
			if got := res.Value["merged_output"]; got != tc.wantOut+tc.wantErr && got != tc.wantErr+tc.wantOut {
				t.Errorf("merged_output = %q", got)
			}
		})
	}
}

func TestScriptOneChannelAndCleanup(t *testing.T) {
	r, c, tg := localRunner(t)
	script := "#!/bin/sh\necho \"args: $# [$1] [$2]\"\necho \"dir: $(dirname \"$0\")\"\nread x && echo \"stdin: $x\"\nexit 0\n"
	res := r.Script(context.Background(), tg, "/some/where/check.sh", []byte(script), []string{"a b", "it's"}, Options{})
	if !res.OK() {
		t.Fatalf("script failed: %+v %v", res.Error, res.Value)
	}
	out := res.Value["stdout"].(string)
	if !strings.Contains(out, "args: 2 [a b] [it's]") {
		t.Errorf("stdout = %q, want the two arguments passed literally", out)
	}
	if strings.Contains(out, "stdin:") {
		t.Errorf("the script must get an empty stdin, got %q", out)
	}
	if n := c.execs.Load(); n != 1 {
		t.Errorf("script used %d channels, want 1", n)
	}
	tmp := tg.TransportConfig()["tmpdir"].(string)
	if left, _ := filepath.Glob(filepath.Join(tmp, "muster.*")); len(left) != 0 {
		t.Errorf("temporary directories left behind: %v", left)
	}
	dirLine := out[strings.Index(out, "dir: ")+5:]
	if !strings.HasPrefix(dirLine, tmp+"/muster.") {
		t.Errorf("script ran in %q, want a private dir under %s", dirLine, tmp)
	}
}

func TestScriptFailureAndSetupFailure(t *testing.T) {
	r, _, tg := localRunner(t)
	res := r.Script(context.Background(), tg, "fail.sh", []byte("echo bad >&2; exit 7"), nil, Options{})
	if res.OK() || res.Error.Kind != muster.KindCommand || res.Value["exit_code"] != 7 {
		t.Fatalf("got %+v %v, want command-error with exit 7", res.Error, res.Value)
	}
	res = r.Script(context.Background(), tg, "x.sh", []byte("true"), nil, Options{TmpDir: "/nonexistent/dir"})
	if res.OK() || res.Error.Kind != muster.KindFile || !strings.Contains(res.Error.Msg, "/nonexistent/dir") {
		t.Fatalf("got %+v, want a file error naming the tmpdir", res.Error)
	}
}

func TestUploadDownloadRoundTrip(t *testing.T) {
	r, c, tg := localRunner(t)
	src := filepath.Join(t.TempDir(), "site")
	must(t, os.MkdirAll(filepath.Join(src, "sub"), 0o750))
	must(t, os.WriteFile(filepath.Join(src, "run.sh"), []byte("#!/bin/sh\n"), 0o755))
	must(t, os.WriteFile(filepath.Join(src, "sub", "secret"), []byte("s3cret"), 0o600))
	must(t, os.Symlink("run.sh", filepath.Join(src, "link")))
	a, err := Pack(src)
	must(t, err)
	dest := filepath.Join(t.TempDir(), "deployed")
	res := r.Upload(context.Background(), tg, a, dest, Options{})
	if !res.OK() {
		t.Fatalf("upload failed: %+v %v", res.Error, res.Value)
	}
	if c.execs.Load() != 1 {
		t.Errorf("upload used %d channels, want 1", c.execs.Load())
	}
	for p, mode := range map[string]os.FileMode{"": 0o750, "run.sh": 0o755, "sub": 0o750, "sub/secret": 0o600} {
		fi, err := os.Stat(filepath.Join(dest, p))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != mode {
			t.Errorf("%s mode = %v, want %v", p, fi.Mode().Perm(), mode)
		}
	}
	if l, err := os.Readlink(filepath.Join(dest, "link")); err != nil || l != "run.sh" {
		t.Errorf("symlink = %q, %v; want run.sh", l, err)
	}

	downloads := t.TempDir()
	res = r.Download(context.Background(), tg, dest, downloads, Options{})
	if !res.OK() {
		t.Fatalf("download failed: %+v %v", res.Error, res.Value)
	}
	got, err := os.ReadFile(filepath.Join(downloads, "localhost", "deployed", "sub", "secret"))
	if err != nil || string(got) != "s3cret" {
		t.Fatalf("downloaded file = %q, %v", got, err)
	}
	if res.Value["path"] != filepath.Join(downloads, "localhost", "deployed") {
		t.Errorf("path = %v", res.Value["path"])
	}
	res = r.Download(context.Background(), tg, "/nonexistent/file", downloads, Options{})
	if res.OK() || res.Error.Kind != muster.KindFile {
		t.Fatalf("download of a missing file: got %+v, want a file error", res.Error)
	}
}

func TestUploadToMissingDirectoryFails(t *testing.T) {
	r, _, tg := localRunner(t)
	f := filepath.Join(t.TempDir(), "f")
	must(t, os.WriteFile(f, []byte("x"), 0o644))
	a, err := Pack(f)
	must(t, err)
	res := r.Upload(context.Background(), tg, a, "/nonexistent/dir/f", Options{})
	if res.OK() || res.Error.Kind != muster.KindFile || !strings.Contains(res.Error.Msg, "/nonexistent/dir/f") {
		t.Fatalf("got %+v, want a file error naming the destination", res.Error)
	}
}

func TestUnpackRefusesUnsafePaths(t *testing.T) {
	for _, name := range []string{"../evil", "/etc/evil", "other/file", "base/../../evil"} {
		t.Run(name, func(t *testing.T) {
			var buf bytes.Buffer
			tw := tar.NewWriter(&buf)
			must(t, tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: 1, Typeflag: tar.TypeReg}))
			tw.Write([]byte("x"))
			tw.Close()
			dir := t.TempDir()
			if err := unpack(&buf, dir, "base"); err == nil {
				t.Fatalf("unpack accepted %q", name)
			}
		})
	}
	// A symlink in the archive must not let a later entry write through it.
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	must(t, tw.WriteHeader(&tar.Header{Name: "base/", Mode: 0o755, Typeflag: tar.TypeDir}))
	must(t, tw.WriteHeader(&tar.Header{Name: "base/l", Linkname: "/tmp", Typeflag: tar.TypeSymlink}))
	must(t, tw.WriteHeader(&tar.Header{Name: "base/l/evil", Mode: 0o644, Size: 1, Typeflag: tar.TypeReg}))
	tw.Write([]byte("x"))
	tw.Close()
	if err := unpack(&buf, t.TempDir(), "base"); err == nil || !strings.Contains(err.Error(), "symbolic link") {
		t.Fatalf("unpack through a symlink: err = %v", err)
	}
}

func TestRunAsSkippedForLoginUser(t *testing.T) {
	tg := &muster.Target{Name: "h", User: "deploy", Config: map[string]any{}}
	if e := newEscalation(tg, Options{RunAs: "deploy"}); e != nil {
		t.Error("run-as the login user must not use sudo")
	}
	if e := newEscalation(tg, Options{RunAs: "root"}); e == nil {
		t.Error("run-as another user must use sudo")
	}
}

func TestQuote(t *testing.T) {
	for in, want := range map[string]string{"": "''", "abc": "abc", "a b": "'a b'", "it's": `'it'\''s'`, "$x": "'$x'", "/tmp/x.y": "/tmp/x.y"} {
		if got := quote(in); got != want {
			t.Errorf("quote(%q) = %s, want %s", in, got, want)
		}
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestTaskEnvOffTheCommandLine(t *testing.T) {
	r, c, tg := localRunner(t)
	tg.Features = []string{"shell"}
	mods := t.TempDir()
	dir := filepath.Join(mods, "m", "tasks")
	must(t, os.MkdirAll(dir, 0o755))
	must(t, os.WriteFile(filepath.Join(dir, "env.sh"), []byte("#!/bin/sh\nprintf '%s' \"$PT_v\"\n"), 0o755))
	must(t, os.WriteFile(filepath.Join(dir, "env.json"), []byte(`{"input_method": "environment"}`), 0o644))
	idx, err := task.Find([]string{mods})
	must(t, err)
	tk, err := idx.Get("m::env")
	must(t, err)
	tricky := "line1\nback\\slash\\0012 'q' \"dq\" $HOME %s\n\n"
	res := r.Task(context.Background(), tg, &TaskRun{Task: tk, Index: idx, Params: map[string]any{"v": tricky}}, Options{})
	if !res.OK() || res.Value["_output"] != tricky {
		t.Fatalf("PT_v round trip: got %q (%+v), want %q", res.Value["_output"], res.Error, tricky)
	}
	for _, l := range c.lines {
		if strings.Contains(l, "line1") {
			t.Errorf("a parameter value is on the command line: %s", l)
		}
	}
}
