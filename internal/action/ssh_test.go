package action

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/muster-run/muster"
	"github.com/muster-run/muster/internal/task"
	"github.com/muster-run/muster/internal/testkit/sshtest"
	"github.com/muster-run/muster/internal/transport/local"
	"github.com/muster-run/muster/internal/transport/ssh"
)

func sshRunner(t *testing.T) (*Runner, *counting, *muster.Target, *sshtest.Server) {
	t.Helper()
	s := sshtest.Start(t, sshtest.Options{})
	tr := ssh.New(ssh.Options{KnownHostsFiles: []string{s.KnownHostsFile}, SSHConfigFile: "none"})
	t.Cleanup(func() { tr.Close() })
	c := &counting{Transport: tr}
	tg := &muster.Target{Name: "web1", Transport: "ssh", Host: "127.0.0.1", Port: s.Port, User: s.User,
		Features: []string{"shell"},
		Config:   map[string]any{"ssh": map[string]any{"private-key": s.ClientKeyFile}}}
	return &Runner{Transports: map[string]muster.Transport{"ssh": c}}, c, tg, s
}

func demoTask(t *testing.T) (*task.Task, *task.Index) {
	t.Helper()
	mods := t.TempDir()
	dir := filepath.Join(mods, "demo", "tasks")
	must(t, os.MkdirAll(dir, 0o755))
	must(t, os.WriteFile(filepath.Join(dir, "hello.sh"), []byte("#!/bin/sh\necho \"{\\\"hi\\\": \\\"$PT_name\\\"}\"\n"), 0o755))
	must(t, os.WriteFile(filepath.Join(dir, "hello.json"), []byte(`{"parameters": {"name": {"type": "String"}}}`), 0o644))
	idx, err := task.Find([]string{mods})
	must(t, err)
	tk, err := idx.Get("demo::hello")
	must(t, err)
	return tk, idx
}

// The round-trip aim: one channel per task per target, cached or not; a
// cache that vanished costs one more; cleanup is one channel per target.
func TestTaskChannelsPerTarget(t *testing.T) {
	r, c, tg, s := sshRunner(t)
	tk, idx := demoTask(t)
	ctx := context.Background()
	run := func(name string) *muster.Result {
		t.Helper()
		res := r.Task(ctx, tg, &TaskRun{Task: tk, Index: idx, Params: map[string]any{"name": name}}, Options{})
		if !res.OK() || res.Value["hi"] != name {
			t.Fatalf("task run: %+v %v", res.Error, res.Value)
		}
		return res
	}
	steps := []struct {
		name         string
		do           func()
		wantChannels int64
	}{
		{"first run sends the files", func() { run("a") }, 1},
		{"second run uses the cache", func() { run("b") }, 1},
		{"third run uses the cache", func() { run("c") }, 1},
		{"cache removed on the target", func() {
			must(t, os.RemoveAll(r.cacheDirFor(t, tg)))
			run("d")
		}, 2},
		{"cleanup", func() { r.Cleanup(ctx) }, 1},
	}
	sessions := s.SessionsOpened()
	for _, st := range steps {
		before := c.execs.Load()
		st.do()
		if got := c.execs.Load() - before; got != st.wantChannels {
			t.Errorf("%s: %d channels, want %d", st.name, got, st.wantChannels)
		}
	}
	if got, want := s.SessionsOpened()-sessions, 6; got != want {
		t.Errorf("sshd opened %d sessions, want %d", got, want)
	}
	if n := s.ConnectionsAccepted(); n != 1 {
		t.Errorf("sshd accepted %d connections, want 1", n)
	}
	if _, err := os.Stat(r.cacheDirFor(t, tg)); !os.IsNotExist(err) {
		t.Errorf("cache directory left after cleanup: %v", err)
	}
}

// cacheDirFor returns the cache directory this runner uses on tg (the
// test's sshd runs on this machine, so the path is local too).
func (r *Runner) cacheDirFor(t *testing.T, tg *muster.Target) string {
	t.Helper()
	r.cache.mu.Lock()
	defer r.cache.mu.Unlock()
	return taskCacheDir(r.tmpdir(tg, Options{}), r.cache.token, tg.User)
}

func TestScriptAndCommandOneChannelOverSSH(t *testing.T) {
	r, c, tg, s := sshRunner(t)
	ctx := context.Background()
	before := s.SessionsOpened()
	if res := r.Script(ctx, tg, "x.sh", []byte("echo ok"), nil, Options{}); !res.OK() {
		t.Fatalf("%+v", res.Error)
	}
	if res := r.Command(ctx, tg, "true", Options{Env: map[string]string{"A": "b"}}); !res.OK() {
		t.Fatalf("%+v", res.Error)
	}
	if got := s.SessionsOpened() - before; got != 2 || c.execs.Load() != 2 {
		t.Errorf("script + command used %d sessions (%d execs), want 2", got, c.execs.Load())
	}
}

// Forget removes the target's task cache over its connection and closes
// the connection; a later task on it connects and unpacks afresh, and
// Linger with Idle 0 does the same after every action.
func TestForgetRemovesCacheAndConnection(t *testing.T) {
	r, _, tg, s := sshRunner(t)
	tk, idx := demoTask(t)
	ctx := context.Background()
	run := func() {
		t.Helper()
		res := r.Task(ctx, tg, &TaskRun{Task: tk, Index: idx, Params: map[string]any{"name": "x"}}, Options{})
		if !res.OK() {
			t.Fatalf("task run: %+v", res.Error)
		}
	}
	run()
	dir := r.cacheDirFor(t, tg)
	r.Release(tg) // a task cache keeps the connection: Release alone does not close it
	run()
	if n := s.ConnectionsAccepted(); n != 1 {
		t.Fatalf("sshd accepted %d connections before Forget, want 1", n)
	}
	r.Forget(ctx, tg)
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("cache directory left after Forget: %v", err)
	}
	l := NewLinger(r, 0, 0)
	l.Use(tg)
	run()
	l.Done(ctx, tg)
	if n := s.ConnectionsAccepted(); n != 2 {
		t.Errorf("sshd accepted %d connections, want 2 (one more after Forget)", n)
	}
	if _, err := os.Stat(r.cacheDirFor(t, tg)); !os.IsNotExist(err) {
		t.Errorf("cache directory left after Linger with Idle 0: %v", err)
	}
}

// One task cache per user on a machine: a task run as the login user and
// then as root (or on the same machine over the local transport as root
// and over SSH as the login user) works every time, each user unpacking
// into a directory of their own, and cleanup removes them all.
func TestTaskCachePerUser(t *testing.T) {
	asRoot := Options{RunAs: "root", SudoPassword: sshtest.SudoPassword}
	tests := []struct {
		name  string
		steps []string // "ssh", "ssh-root" or "local"
	}{
		{"login user then run-as root", []string{"ssh", "ssh-root", "ssh", "ssh-root"}},
		{"run-as root then login user", []string{"ssh-root", "ssh"}},
		{"local as root then ssh as the login user", []string{"local", "ssh", "local"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, _, tg, _ := sshRunner(t)
			r.Transports["local"] = local.New()
			lt := &muster.Target{Name: "localhost", Transport: "local", Features: []string{"shell"}, Config: map[string]any{}}
			tk, idx := demoTask(t)
			ctx := context.Background()
			for i, step := range tc.steps {
				target, opts := tg, Options{}
				switch step {
				case "ssh-root":
					opts = asRoot
				case "local":
					target = lt
				}
				res := r.Task(ctx, target, &TaskRun{Task: tk, Index: idx, Params: map[string]any{"name": step}}, opts)
				if !res.OK() || res.Value["hi"] != step {
					t.Fatalf("step %d (%s): %+v %v", i+1, step, res.Error, res.Value)
				}
			}
			r.cache.mu.Lock()
			token := r.cache.token
			r.cache.mu.Unlock()
			r.Cleanup(ctx)
			if left, _ := filepath.Glob("/tmp/muster." + token + "*"); len(left) != 0 {
				t.Errorf("task caches left after cleanup: %v", left)
			}
		})
	}
}

// Run-as over SSH keeps working with the supervised programs: sudo gets
// its password, the payload follows, and refusals are escalation errors.
func TestRunAsOverSSH(t *testing.T) {
	r, _, tg, _ := sshRunner(t)
	tests := []struct {
		name     string
		password string
		wantOut  string
		wantCode string
	}{
		{"right password", sshtest.SudoPassword, "root\nhello\n", ""},
		{"wrong password", "not-the-password", "", "BAD_PASSWORD"},
		{"no password", "", "", "NO_PASSWORD"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			opts := Options{RunAs: "root", SudoPassword: tc.password}
			res := r.Script(context.Background(), tg, "who.sh", []byte("id -un\necho hello\n"), nil, opts)
			if tc.wantCode == "" {
				if !res.OK() || res.Value["stdout"] != tc.wantOut {
					t.Fatalf("got %+v %v, want stdout %q", res.Error, res.Value, tc.wantOut)
				}
				return
			}
			if res.OK() || res.Error.Kind != muster.KindEscalate || res.Error.IssueCode != tc.wantCode {
				t.Fatalf("got %+v, want %s %s", res.Error, muster.KindEscalate, tc.wantCode)
			}
		})
	}
}
