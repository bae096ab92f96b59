package apply

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/muster-run/muster"
	"github.com/muster-run/muster/internal/action"
	"github.com/muster-run/muster/internal/testkit/sshtest"
	"github.com/muster-run/muster/internal/transport/ssh"
)

func sshApplier(t *testing.T, modules map[string]string) (*Applier, *counting, *muster.Target, *sshtest.Server) {
	t.Helper()
	requirePuppet(t)
	s := sshtest.Start(t, sshtest.Options{})
	tr := ssh.New(ssh.Options{KnownHostsFiles: []string{s.KnownHostsFile}, SSHConfigFile: "none"})
	t.Cleanup(func() { tr.Close() })
	c := &counting{Transport: tr}
	tg := &muster.Target{Name: "web1", Transport: "ssh", Host: "127.0.0.1", Port: s.Port, User: s.User,
		Config: map[string]any{"ssh": map[string]any{"private-key": s.ClientKeyFile}}}
	r := &action.Runner{Transports: map[string]muster.Transport{"ssh": c}}
	return &Applier{Runner: r, Modules: modules, Keep: true}, c, tg, s
}

// Over a real sshd, as the unprivileged login user and through sudo as
// root: the manifest and modules travel in the apply's one channel.
func TestApplySSH(t *testing.T) {
	mods := t.TempDir()
	dir := writeModule(t, mods, "demo", "class demo(String $path, String $text) {\n  file { $path: content => $text, mode => '0644' }\n}\n")
	a, c, tg, s := sshApplier(t, map[string]string{"demo": dir})
	ctx := context.Background()
	// The login user must reach the file: a directory every user may enter.
	base, err := os.MkdirTemp("", "muster-apply-ssh-")
	must(t, err)
	t.Cleanup(func() { os.RemoveAll(base) })
	must(t, os.Chmod(base, 0o777))
	out := filepath.Join(base, "out")
	manifest := "class { 'demo': path => " + Quote(out) + ", text => 'over ssh' }\n"
	sessions := s.SessionsOpened()

	res := a.Apply(ctx, tg, manifest, Options{}, action.Options{})
	if !res.OK() || report(t, res)["status"] != "changed" {
		t.Fatalf("apply over ssh: %+v", res.Error)
	}
	if got, _ := os.ReadFile(out); string(got) != "over ssh" {
		t.Fatalf("file holds %q", got)
	}
	res = a.Apply(ctx, tg, manifest, Options{}, action.Options{})
	if !res.OK() || report(t, res)["status"] != "unchanged" {
		t.Fatalf("second apply: %+v", res.Error)
	}
	if got := c.execs.Load(); got != 2 {
		t.Errorf("%d channels for two applies, want 2", got)
	}

	// As root through sudo: its own cache directory, and a change only
	// root may make.
	rootFile := filepath.Join(base, "root-only", "f")
	must(t, os.Mkdir(filepath.Dir(rootFile), 0o700))
	asRoot := action.Options{RunAs: "root", SudoPassword: sshtest.SudoPassword}
	res = a.Apply(ctx, tg, "file { "+Quote(rootFile)+": content => 'root' }\n", Options{}, asRoot)
	if !res.OK() {
		t.Fatalf("apply as root: %+v", res.Error)
	}
	if got, _ := os.ReadFile(rootFile); string(got) != "root" {
		t.Fatalf("root file holds %q", got)
	}
	res = a.Apply(ctx, tg, "exec { 'false': path => '/bin:/usr/bin' }\n", Options{Noop: false}, action.Options{})
	if res.OK() || res.Error.Kind != KindResourceFailure || !strings.Contains(res.Error.Msg, "Exec[false]") {
		t.Fatalf("failing apply over ssh: %+v", res.Error)
	}
	a.Cleanup(ctx)
	if got := s.SessionsOpened() - sessions; got != 6 {
		t.Errorf("sshd opened %d sessions, want 6 (4 applies, and cleanup for 2 users)", got)
	}
	if left, _ := filepath.Glob("/tmp/muster-apply." + a.runToken() + ".*"); len(left) != 0 {
		t.Errorf("caches left after cleanup: %v", left)
	}
}

func TestPrepSSH(t *testing.T) {
	a, _, tg, _ := sshApplier(t, nil)
	res := Prep(context.Background(), a.Runner, tg, false, action.Options{})
	if !res.OK() || res.Action != "apply_prep" || res.Value["version"] == "" || res.Value["installed"] != false {
		t.Fatalf("prep: %+v %v", res.Error, res.Value)
	}
}
