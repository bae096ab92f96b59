package ssh_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	xssh "golang.org/x/crypto/ssh"

	"github.com/muster-run/muster"
	"github.com/muster-run/muster/internal/testkit/sshtest"
	"github.com/muster-run/muster/internal/transport/ssh"
	"github.com/muster-run/muster/internal/transport/transporttest"
)

func TestMain(m *testing.M) {
	os.Unsetenv("SSH_AUTH_SOCK") // tests that want an agent start their own
	os.Exit(m.Run())
}

// newTransport returns a Transport trusting only s's host key, closed at the
// end of the test.
func newTransport(t *testing.T, s *sshtest.Server) *ssh.Transport {
	tr := ssh.New(ssh.Options{KnownHostsFiles: []string{s.KnownHostsFile}, SSHConfigFile: "none"})
	t.Cleanup(func() { tr.Close() })
	return tr
}

// target returns a target for s with the given ssh config.
func target(s *sshtest.Server, cfg map[string]any) *muster.Target {
	if cfg == nil {
		cfg = map[string]any{"private-key": s.ClientKeyFile}
	}
	return &muster.Target{Name: "web1", Transport: "ssh", Host: "127.0.0.1", Port: s.Port, User: s.User,
		Config: map[string]any{"ssh": cfg}}
}

func run(t *testing.T, tr muster.Transport, tg *muster.Target, line string) transporttest.Result {
	t.Helper()
	return transporttest.Exec(context.Background(), tr, tg, line, nil)
}

func TestConformance(t *testing.T) {
	s := sshtest.Start(t, sshtest.Options{})
	transporttest.Run(t,
		func(t *testing.T) muster.Transport {
			return ssh.New(ssh.Options{KnownHostsFiles: []string{s.KnownHostsFile}, SSHConfigFile: "none"})
		},
		func(t *testing.T) *muster.Target { return target(s, nil) })
}

func keygen(t *testing.T, dir, name, pass string) string {
	t.Helper()
	f := filepath.Join(dir, name)
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", pass, "-f", f).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v: %s", err, out)
	}
	return f
}

func startAgent(t *testing.T, keys ...string) {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "agent.sock")
	agent := exec.Command("ssh-agent", "-D", "-a", sock)
	if err := agent.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { agent.Process.Kill(); agent.Wait() })
	t.Setenv("SSH_AUTH_SOCK", sock)
	for i := 0; ; i++ {
		if _, err := os.Stat(sock); err == nil {
			break
		} else if i > 500 {
			t.Fatal("ssh-agent did not create its socket")
		}
		exec.Command("sleep", "0.01").Run()
	}
	for _, k := range keys {
		if out, err := exec.Command("ssh-add", k).CombinedOutput(); err != nil {
			t.Fatalf("ssh-add: %v: %s", err, out)
		}
	}
}

func TestAuthMethods(t *testing.T) {
	s := sshtest.Start(t, sshtest.Options{})
	pw := sshtest.Start(t, sshtest.Options{ExtraConfig: "PasswordAuthentication yes\nKbdInteractiveAuthentication yes\n"})
	tests := []struct {
		name  string
		srv   *sshtest.Server
		cfg   map[string]any
		agent bool
	}{
		{"key file", s, map[string]any{"private-key": s.ClientKeyFile}, false},
		{"key data", s, map[string]any{"private-key": map[string]any{"key-data": string(s.ClientKeyPEM)}}, false},
		{"agent", s, map[string]any{}, true},
		{"password", pw, map[string]any{"password": sshtest.SudoPassword}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.agent {
				startAgent(t, tc.srv.ClientKeyFile)
			}
			tr := newTransport(t, tc.srv)
			r := run(t, tr, target(tc.srv, tc.cfg), "id -un")
			if diff := cmp.Diff(transporttest.Result{Stdout: sshtest.User + "\n"}, r, cmp.Comparer(errEq)); diff != "" {
				t.Errorf("result (-want +got):\n%s", diff)
			}
		})
	}
}

func errEq(a, b error) bool { return (a == nil) == (b == nil) }

// wantErr checks kind, issue code and message fragments of err.
func wantErr(t *testing.T, err error, kind, code string, fragments ...string) {
	t.Helper()
	var me *muster.Error
	if !errors.As(err, &me) {
		t.Fatalf("err = %v (%T), want *muster.Error", err, err)
	}
	if me.Kind != kind || me.IssueCode != code {
		t.Errorf("kind, code = %q, %q; want %q, %q (msg %q)", me.Kind, me.IssueCode, kind, code, me.Msg)
	}
	for _, f := range fragments {
		if !strings.Contains(me.Msg, f) {
			t.Errorf("message %q does not contain %q", me.Msg, f)
		}
	}
}

func TestAuthFailureNotRetried(t *testing.T) {
	s := sshtest.Start(t, sshtest.Options{})
	wrong := keygen(t, t.TempDir(), "wrong", "")
	tr := newTransport(t, s)
	tg := target(s, map[string]any{"private-key": wrong})
	for range 3 {
		r := run(t, tr, tg, "true")
		wantErr(t, r.Err, muster.KindAuth, "AUTH_ERROR", "web1")
	}
	if got := s.ConnectionsAccepted(); got != 1 {
		t.Errorf("sshd accepted %d connections, want 1 (auth failures must not be retried)", got)
	}
}

func TestEncryptedKeyWithoutAgent(t *testing.T) {
	s := sshtest.Start(t, sshtest.Options{})
	enc := keygen(t, t.TempDir(), "enc", "secret")
	r := run(t, newTransport(t, s), target(s, map[string]any{"private-key": enc}), "true")
	wantErr(t, r.Err, muster.KindAuth, "AUTH_ERROR", "encrypted", "ssh-add")
	if got := s.ConnectionsAccepted(); got != 0 {
		t.Errorf("sshd accepted %d connections, want 0", got)
	}
}

func TestHostKeys(t *testing.T) {
	s := sshtest.Start(t, sshtest.Options{})
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	os.WriteFile(empty, nil, 0o644)
	other := sshtest.Start(t, sshtest.Options{})
	wrongKH := filepath.Join(dir, "wrong")
	os.WriteFile(wrongKH, []byte(fmt.Sprintf("[127.0.0.1]:%d %s", s.Port, strings.SplitN(mustRead(t, other.KnownHostsFile), " ", 2)[1])), 0o644)
	tests := []struct {
		name      string
		kh        string
		cfg       map[string]any
		fragments []string // nil: success
	}{
		{"known", s.KnownHostsFile, nil, nil},
		{"unknown", empty, nil, []string{"not in known_hosts", s.HostKeyFingerprint, "127.0.0.1"}},
		{"mismatch", wrongKH, nil, []string{"MISMATCH", s.HostKeyFingerprint, other.HostKeyFingerprint}},
		{"check off", empty, map[string]any{"private-key": s.ClientKeyFile, "host-key-check": false}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tr := ssh.New(ssh.Options{KnownHostsFiles: []string{tc.kh}, SSHConfigFile: "none"})
			defer tr.Close()
			r := run(t, tr, target(s, tc.cfg), "echo ok")
			if tc.fragments == nil {
				if r.Err != nil || r.Stdout != "ok\n" {
					t.Fatalf("got %+v", r)
				}
				return
			}
			wantErr(t, r.Err, muster.KindConnect, "HOST_KEY_ERROR", tc.fragments...)
		})
	}
}

func mustRead(t *testing.T, f string) string {
	t.Helper()
	b, err := os.ReadFile(f)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestConnectErrors(t *testing.T) {
	s := sshtest.Start(t, sshtest.Options{})
	closed, _ := net.Listen("tcp", "127.0.0.1:0")
	closedPort := closed.Addr().(*net.TCPAddr).Port
	closed.Close()
	// A listener that accepts (through the kernel backlog) but never speaks.
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	silentPort := silent.Addr().(*net.TCPAddr).Port
	tests := []struct {
		name      string
		host      string
		port      int
		cfg       map[string]any
		fragments []string
	}{
		{"refused", "127.0.0.1", closedPort, nil, []string{"web1", "refused"}},
		{"unresolvable", "nonexistent.invalid", 22, nil, []string{"web1", "nonexistent.invalid"}},
		{"timeout", "127.0.0.1", silentPort, map[string]any{"private-key": s.ClientKeyFile, "connect-timeout": 1},
			[]string{"Timeout after 1 seconds connecting to web1"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tg := target(s, tc.cfg)
			tg.Host, tg.Port = tc.host, tc.port
			r := run(t, newTransport(t, s), tg, "true")
			wantErr(t, r.Err, muster.KindConnect, "CONNECT_ERROR", tc.fragments...)
		})
	}
}

func TestConfigValidation(t *testing.T) {
	tr := ssh.New(ssh.Options{SSHConfigFile: "none"})
	defer tr.Close()
	tests := []struct {
		cfg  map[string]any
		want string
	}{
		{map[string]any{"port": "abc"}, `target web1: ssh config "port": want an integer, got "abc"`},
		{map[string]any{"host-key-check": "maybe"}, `target web1: ssh config "host-key-check": want a boolean, got "maybe"`},
		{map[string]any{"private-key": 3}, `target web1: ssh config "private-key": want a path or {key-data: ...}, got 3 (int)`},
		{map[string]any{"connect-timeout": 1.5}, `target web1: ssh config "connect-timeout": want an integer, got 1.5 (float64)`},
	}
	for _, tc := range tests {
		tg := &muster.Target{Name: "web1", Transport: "ssh", Config: map[string]any{"ssh": tc.cfg}}
		_, err := tr.Exec(context.Background(), tg, &muster.Command{Line: "true"})
		if err == nil || err.Error() != tc.want || muster.KindOf(err) != muster.KindInvalid {
			t.Errorf("cfg %v: err = %v (kind %q), want %q", tc.cfg, err, muster.KindOf(err), tc.want)
		}
	}
}

func TestSSHConfigFile(t *testing.T) {
	s := sshtest.Start(t, sshtest.Options{})
	cfgFile := filepath.Join(t.TempDir(), "config")
	os.WriteFile(cfgFile, []byte(fmt.Sprintf(`Host web1
  HostName 127.0.0.1
  Port %d
  User %s
  IdentityFile %s
  UserKnownHostsFile %s
`, s.Port, s.User, s.ClientKeyFile, s.KnownHostsFile)), 0o644)
	tr := ssh.New(ssh.Options{KnownHostsFiles: []string{}, SSHConfigFile: cfgFile})
	defer tr.Close()
	tg := &muster.Target{Name: "web1", Transport: "ssh", Host: "web1"}
	r := run(t, tr, tg, `id -un; echo $SSH_CONNECTION`)
	if r.Err != nil || !strings.HasPrefix(r.Stdout, s.User+"\n") || !strings.Contains(r.Stdout, fmt.Sprintf("127.0.0.1 %d", s.Port)) {
		t.Fatalf("got %+v", r)
	}
	// load-config: false ignores the file: port 22 on 127.0.0.1 answers no one here.
	tg = &muster.Target{Name: "web1", Transport: "ssh", Host: "127.0.0.1",
		Config: map[string]any{"ssh": map[string]any{"load-config": false, "private-key": s.ClientKeyFile, "user": s.User}}}
	if r := run(t, tr, tg, "true"); r.Err == nil {
		t.Errorf("load-config false: connected anyway")
	}
}

func TestProxyJump(t *testing.T) {
	s := sshtest.Start(t, sshtest.Options{ListenAll: true})
	if err := s.AddKnownHost("127.0.0.2", "127.0.0.3"); err != nil {
		t.Fatal(err)
	}
	tr := newTransport(t, s)
	jump := fmt.Sprintf("%s@127.0.0.1:%d", s.User, s.Port)
	for _, host := range []string{"127.0.0.2", "127.0.0.3", "127.0.0.2"} {
		tg := target(s, map[string]any{"private-key": s.ClientKeyFile, "proxyjump": jump})
		tg.Host = host
		r := run(t, tr, tg, `echo $SSH_CONNECTION`)
		if f := strings.Fields(r.Stdout); r.Err != nil || len(f) != 4 || f[2] != host {
			t.Fatalf("via %s to %s: got %+v", jump, host, r)
		}
	}
	// One bastion connection, plus one tunnelled connection per target.
	if got := s.ConnectionsAccepted(); got != 3 {
		t.Errorf("sshd accepted %d connections, want 3", got)
	}
}

func TestOneConnectionPerTarget(t *testing.T) {
	s := sshtest.Start(t, sshtest.Options{})
	tr := newTransport(t, s)
	tg := target(s, nil)
	// Concurrent first Execs share one dial, then channels (sshd allows 10).
	var wg sync.WaitGroup
	errs := make(chan error, 30)
	for i := range 30 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := transporttest.Exec(context.Background(), tr, tg, fmt.Sprintf("sleep 0.05; echo %d", i), nil)
			if r.Err != nil || r.Stdout != fmt.Sprintf("%d\n", i) {
				errs <- fmt.Errorf("exec %d: %+v", i, r)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for i := range 20 {
		if r := run(t, tr, tg, "echo hi"); r.Err != nil || r.Stdout != "hi\n" {
			t.Fatalf("sequential exec %d: %+v", i, r)
		}
	}
	if got := s.ConnectionsAccepted(); got != 1 {
		t.Errorf("sshd accepted %d connections, want 1", got)
	}
	if got := s.SessionsOpened(); got != 50 {
		t.Errorf("sshd opened %d sessions, want 50", got)
	}
}

func TestReconnectAfterServerRestart(t *testing.T) {
	s := sshtest.Start(t, sshtest.Options{})
	tr := newTransport(t, s)
	tg := target(s, nil)
	if r := run(t, tr, tg, "echo 1"); r.Err != nil {
		t.Fatal(r.Err)
	}
	if err := s.Restart(); err != nil {
		t.Fatal(err)
	}
	if r := run(t, tr, tg, "echo 2"); r.Err != nil || r.Stdout != "2\n" {
		t.Fatalf("after restart: %+v", r)
	}
	if r := run(t, tr, tg, "echo 3"); r.Err != nil || r.Stdout != "3\n" {
		t.Fatalf("second exec after restart: %+v", r)
	}
	if got := s.ConnectionsAccepted(); got != 2 {
		t.Errorf("sshd accepted %d connections, want 2", got)
	}
}

func TestCancelKillsRemoteSleep(t *testing.T) {
	s := sshtest.Start(t, sshtest.Options{})
	tr := newTransport(t, s)
	tg := target(s, nil)
	ctx, cancel := context.WithCancel(context.Background())
	started := make(chan struct{})
	errc := make(chan error, 1)
	go func() {
		_, err := tr.Exec(ctx, tg, &muster.Command{Line: "echo started; sleep 297", Stdout: writerFunc(func(p []byte) {
			select {
			case <-started:
			default:
				close(started)
			}
		})})
		errc <- err
	}()
	<-started
	pgrep := func() bool { return exec.Command("pgrep", "-u", sshtest.User, "-f", "sleep 297").Run() == nil }
	if !pgrep() {
		t.Fatal("remote sleep not found by pgrep before cancel")
	}
	cancel()
	err := <-errc
	wantErr(t, err, muster.KindCancelled, "")
	for i := 0; pgrep(); i++ {
		if i > 400 {
			t.Fatal("remote sleep 297 still running after cancel")
		}
		exec.Command("sleep", "0.01").Run()
	}
}

type writerFunc func(p []byte)

func (f writerFunc) Write(p []byte) (int, error) { f(p); return len(p), nil }

func TestExitSignal(t *testing.T) {
	s := sshtest.Start(t, sshtest.Options{})
	r := run(t, newTransport(t, s), target(s, nil), "kill -TERM $$")
	if r.Err != nil || r.Code != 128+15 {
		t.Errorf("got code %d err %v, want 143", r.Code, r.Err)
	}
}

func TestSessionQueueRespectsContext(t *testing.T) {
	s := sshtest.Start(t, sshtest.Options{})
	tr := ssh.New(ssh.Options{KnownHostsFiles: []string{s.KnownHostsFile}, SSHConfigFile: "none", MaxSessions: 1})
	defer tr.Close()
	tg := target(s, nil)
	// Hold the only session slot until its context is cancelled.
	holdCtx, release := context.WithCancel(context.Background())
	started := make(chan struct{})
	held := make(chan error, 1)
	go func() {
		_, err := tr.Exec(holdCtx, tg, &muster.Command{Line: "echo go; sleep 296", Stdout: writerFunc(func([]byte) {
			select {
			case <-started:
			default:
				close(started)
			}
		})})
		held <- err
	}()
	<-started
	// One Exec waits for the slot and gets it later; another gives up.
	queued := make(chan error, 1)
	go func() { queued <- transporttest.Exec(context.Background(), tr, tg, "echo later", nil).Err }()
	ctx2, cancel2 := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := tr.Exec(ctx2, tg, &muster.Command{Line: "echo never"})
		errc <- err
	}()
	cancel2()
	wantErr(t, <-errc, muster.KindCancelled, "")
	release()
	<-held
	if err := <-queued; err != nil {
		t.Errorf("queued exec after the slot freed: %v", err)
	}
}

func TestReleaseClosesTheConnection(t *testing.T) {
	s := sshtest.Start(t, sshtest.Options{})
	tr := ssh.New(ssh.Options{KnownHostsFiles: []string{s.KnownHostsFile}, SSHConfigFile: "none"})
	t.Cleanup(func() { tr.Close() })
	tg := &muster.Target{Name: "web1", Transport: "ssh", Host: "127.0.0.1", Port: s.Port, User: s.User,
		Config: map[string]any{"ssh": map[string]any{"private-key": s.ClientKeyFile}}}
	for i := 0; i < 2; i++ {
		if code, err := tr.Exec(context.Background(), tg, &muster.Command{Line: "true"}); err != nil || code != 0 {
			t.Fatalf("exec %d: %d %v", i, code, err)
		}
		tr.Release(tg)
	}
	if n := s.ConnectionsAccepted(); n != 2 {
		t.Errorf("sshd accepted %d connections, want 2 (one per Exec after Release)", n)
	}
	tr.Release(&muster.Target{Name: "never-used", Transport: "ssh", Host: "127.0.0.1", Port: 1})
}

// An idle connection is reset rather than closed with a FIN (sshd's cheap
// exit path, as after OpenSSH's SSH_MSG_DISCONNECT), and only once sshd has
// closed the session.
func TestReleaseResetsIdleConnection(t *testing.T) {
	s := sshtest.Start(t, sshtest.Options{})
	tr := newTransport(t, s)
	tg := target(s, nil)
	if r := run(t, tr, tg, "true"); r.Err != nil {
		t.Fatal(r.Err)
	}
	tr.Release(tg)
	for i := 0; s.CountLog("reset by peer") == 0; i++ {
		if i > 500 {
			t.Fatal(`sshd logged no "reset by peer" after Release`)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if n := s.CountLog("Close session: "); n != 1 {
		t.Errorf("sshd closed %d sessions before the reset, want 1", n)
	}
	if n := s.CountLog("Connection closed by"); n != 0 {
		t.Errorf("sshd saw %d orderly closes, want 0", n)
	}
}

// A server with an RSA and an Ed25519 host key (and no ECDSA one) is asked
// for Ed25519, which is far cheaper for sshd to sign than RSA (x/crypto's
// default order would pick RSA), with the host key check off and with
// known_hosts listing the RSA key first.
func TestHostKeyPreference(t *testing.T) {
	dir, err := os.MkdirTemp("", "muster-hostkey-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	block, err := xssh.MarshalPrivateKey(rk, "")
	if err != nil {
		t.Fatal(err)
	}
	rsaFile := filepath.Join(dir, "host_rsa")
	if err := os.WriteFile(rsaFile, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	rsaPub, err := xssh.NewPublicKey(&rk.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	s := sshtest.Start(t, sshtest.Options{LogLevel: "DEBUG1", ExtraConfig: "HostKey " + rsaFile})
	kh := filepath.Join(dir, "known_hosts")
	line := fmt.Sprintf("[127.0.0.1]:%d %s", s.Port, xssh.MarshalAuthorizedKey(rsaPub))
	if err := os.WriteFile(kh, []byte(line+mustRead(t, s.KnownHostsFile)), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, cfg := range []map[string]any{
		{"private-key": s.ClientKeyFile, "host-key-check": false},
		{"private-key": s.ClientKeyFile},
	} {
		tr := ssh.New(ssh.Options{KnownHostsFiles: []string{kh}, SSHConfigFile: "none"})
		r := run(t, tr, target(s, cfg), "echo ok")
		tr.Close()
		if r.Err != nil || r.Stdout != "ok\n" {
			t.Fatalf("%v: got %+v", cfg, r)
		}
	}
	if n := s.CountLog("kex: host key algorithm: ssh-ed25519"); n != 2 {
		t.Errorf("sshd signed with Ed25519 in %d handshakes, want 2 (rsa: %d)", n, s.CountLog("kex: host key algorithm: rsa"))
	}
}
