package ssh_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/muster-run/muster"
	"github.com/muster-run/muster/internal/testkit/sshtest"
	"github.com/muster-run/muster/internal/transport/ssh"
	"github.com/muster-run/muster/internal/transport/transporttest"
)

// aliases returns targets with the given names that all reach s as the
// same user with the same key, so they share one pooled connection.
func aliases(s *sshtest.Server, names ...string) map[string]*muster.Target {
	tgs := map[string]*muster.Target{}
	for _, n := range names {
		tg := target(s, nil)
		tg.Name = n
		tgs[n] = tg
	}
	return tgs
}

// syncBuffer is a bytes.Buffer safe for concurrent use that closes started
// at the first write.
type syncBuffer struct {
	mu      sync.Mutex
	b       bytes.Buffer
	once    sync.Once
	started chan struct{}
}

func newSyncBuffer() *syncBuffer { return &syncBuffer{started: make(chan struct{})} }

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.once.Do(func() { close(b.started) })
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// blocked is a command that runs until its stdin is closed.
type blocked struct {
	stdin  *io.PipeWriter
	stdout *syncBuffer
	done   chan transporttest.Result
}

// startBlocked runs `echo started; cat >/dev/null; echo ok` on tg and
// returns once the command has printed "started": it ends when the caller
// closes stdin.
func startBlocked(t *testing.T, tr *ssh.Transport, tg *muster.Target) *blocked {
	t.Helper()
	r, w := io.Pipe()
	t.Cleanup(func() { w.Close() })
	b := &blocked{stdin: w, stdout: newSyncBuffer(), done: make(chan transporttest.Result, 1)}
	go func() {
		var stderr bytes.Buffer
		code, err := tr.Exec(context.Background(), tg, &muster.Command{Line: "echo started; cat >/dev/null; echo ok",
			Stdin: r, Stdout: b.stdout, Stderr: &stderr})
		b.done <- transporttest.Result{Code: code, Stdout: b.stdout.String(), Stderr: stderr.String(), Err: err}
	}()
	select {
	case <-b.stdout.started:
	case r := <-b.done:
		t.Fatalf("%s: command ended before it started: %+v", tg.Name, r)
	}
	return b
}

// Targets with different names and the same user, host, port and key share
// one connection. Releasing one of them (its run is over) while the others
// are in the middle of commands on that connection must not break them.
func TestReleaseSharedConnection(t *testing.T) {
	tests := []struct {
		name     string
		released string // released while s2, s3 and s4 run commands
	}{
		{"a target that ran a command", "s1"},
		{"a target that never ran one", "s5"},
		{"one of the targets running", "s2"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := sshtest.Start(t, sshtest.Options{})
			tr := newTransport(t, s)
			tgs := aliases(s, "s1", "s2", "s3", "s4", "s5")
			if r := run(t, tr, tgs["s1"], "echo s1"); r.Err != nil || r.Stdout != "s1\n" {
				t.Fatalf("s1: %+v", r)
			}
			running := map[string]*blocked{}
			for _, n := range []string{"s2", "s3", "s4"} {
				running[n] = startBlocked(t, tr, tgs[n])
			}
			tr.Release(tgs[tc.released])
			for _, b := range running {
				b.stdin.Close()
			}
			for n, b := range running {
				r := <-b.done
				if n == tc.released {
					continue // a released target's own command may fail
				}
				if r.Err != nil || r.Code != 0 || r.Stdout != "started\nok\n" {
					t.Errorf("%s after releasing %s: %+v", n, tc.released, r)
				}
			}
			if n := s.ConnectionsAccepted(); n != 1 {
				t.Errorf("sshd accepted %d connections, want 1", n)
			}
		})
	}
}

// The shared connection stays open while any target that used it is not
// released, and closes at the last release (the server's connection keeper
// relies on this to close idle connections).
func TestReleaseClosesSharedConnectionAtLast(t *testing.T) {
	tests := []struct {
		name     string
		releases []string // the last one closes the connection
	}{
		{"in order", []string{"a", "b", "c"}},
		{"reverse order", []string{"c", "b", "a"}},
		{"twice, and an unused alias", []string{"a", "a", "unused", "b", "unused", "b", "c"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := sshtest.Start(t, sshtest.Options{})
			tr := newTransport(t, s)
			tgs := aliases(s, "a", "b", "c", "unused")
			for _, n := range []string{"a", "b", "c"} {
				if r := run(t, tr, tgs[n], "echo "+n); r.Err != nil || r.Stdout != n+"\n" {
					t.Fatalf("%s: %+v", n, r)
				}
			}
			done, ok := ssh.PooledConn(tr, tgs["a"])
			if !ok {
				t.Fatal("no pooled connection after the commands")
			}
			last := len(tc.releases) - 1
			for i, n := range tc.releases[:last] {
				tr.Release(tgs[n])
				if _, ok := ssh.PooledConn(tr, tgs["a"]); !ok {
					t.Fatalf("connection closed after release %d (%s) of %v", i+1, n, tc.releases)
				}
			}
			tr.Release(tgs[tc.releases[last]])
			if _, ok := ssh.PooledConn(tr, tgs["a"]); ok {
				t.Errorf("connection still pooled after every target was released")
			}
			<-done // the connection ends
			if n := s.ConnectionsAccepted(); n != 1 {
				t.Errorf("sshd accepted %d connections, want 1", n)
			}
			if r := run(t, tr, tgs["b"], "echo again"); r.Err != nil || r.Stdout != "again\n" {
				t.Fatalf("after the last release: %+v", r)
			}
			if n := s.ConnectionsAccepted(); n != 2 {
				t.Errorf("sshd accepted %d connections, want 2 (a new one after the last release)", n)
			}
		})
	}
}

// MaxSessions counts the channels of every target that shares the
// connection: with one session allowed, a second target's command starts
// only after the first target's command has ended.
func TestSharedConnectionMaxSessions(t *testing.T) {
	s := sshtest.Start(t, sshtest.Options{})
	tr := ssh.New(ssh.Options{KnownHostsFiles: []string{s.KnownHostsFile}, SSHConfigFile: "none", MaxSessions: 1})
	t.Cleanup(func() { tr.Close() })
	tgs := aliases(s, "a", "b")
	a := startBlocked(t, tr, tgs["a"])
	bOut := newSyncBuffer()
	aEnded := make(chan string, 1)
	bDone := make(chan error, 1)
	go func() {
		_, err := tr.Exec(context.Background(), tgs["b"], &muster.Command{Line: "echo b", Stdout: writerFunc(func(p []byte) {
			bOut.Write(p)
			select {
			case aEnded <- a.stdout.String():
			default:
			}
		})})
		bDone <- err
	}()
	a.stdin.Close()
	if r := <-a.done; r.Err != nil || r.Stdout != "started\nok\n" {
		t.Fatalf("a: %+v", r)
	}
	if err := <-bDone; err != nil || bOut.String() != "b\n" {
		t.Fatalf("b: %v, stdout %q", err, bOut.String())
	}
	if got := <-aEnded; got != "started\nok\n" {
		t.Errorf("b's command ran while a's held the only session (a's output so far %q)", got)
	}
	if n := s.ConnectionsAccepted(); n != 1 {
		t.Errorf("sshd accepted %d connections, want 1", n)
	}
}

// holdingProxy forwards one connection to addr: it closes accepted when
// the client connects, waits for proceed before it connects to addr, and
// closes closed when the client has closed its end. It returns its port.
func holdingProxy(t *testing.T, addr string, accepted, proceed, closed chan struct{}) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	t.Cleanup(func() { close(stop); l.Close() })
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		close(accepted)
		select {
		case <-proceed:
		case <-stop:
			return
		}
		u, err := net.Dial("tcp", addr)
		if err != nil {
			return
		}
		defer u.Close()
		go io.Copy(c, u)
		io.Copy(u, c)
		close(closed)
	}()
	return l.Addr().(*net.TCPAddr).Port
}

// A target released while its connection is still being dialled (its Exec
// gave up) leaves no connection behind once the dial ends.
func TestReleaseDuringDial(t *testing.T) {
	s := sshtest.Start(t, sshtest.Options{})
	tr := newTransport(t, s)
	accepted, proceed, closed := make(chan struct{}), make(chan struct{}), make(chan struct{})
	tg := target(s, map[string]any{"private-key": s.ClientKeyFile, "host-key-check": false, "connect-timeout": 3600})
	tg.Port = holdingProxy(t, s.Addr, accepted, proceed, closed)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := tr.Exec(ctx, tg, &muster.Command{Line: "true"})
		errc <- err
	}()
	<-accepted
	dialled := ssh.Dialling(tr, tg)
	if dialled == nil {
		t.Fatal("no dial under way")
	}
	cancel()
	wantErr(t, <-errc, muster.KindCancelled, "")
	tr.Release(tg)
	close(proceed)
	<-dialled
	if _, ok := ssh.PooledConn(tr, tg); ok {
		t.Fatal("connection pooled after its only target was released during the dial")
	}
	<-closed // the client closed it
	if n := s.ConnectionsAccepted(); n != 1 {
		t.Errorf("sshd accepted %d connections, want 1", n)
	}
}

// authKeys manages the server's authorized_keys file.
type authKeys struct {
	t    *testing.T
	file string
	orig string
}

func newAuthKeys(t *testing.T, s *sshtest.Server) *authKeys {
	f := filepath.Join(s.Dir, "authorized_keys")
	return &authKeys{t: t, file: f, orig: mustRead(t, f)}
}

// allow adds the public key of the private key file to authorized_keys.
func (a *authKeys) allow(keyFile string) {
	if err := os.WriteFile(a.file, []byte(a.orig+mustRead(a.t, keyFile+".pub")), 0o644); err != nil {
		a.t.Fatal(err)
	}
}

// reset restores the original authorized_keys.
func (a *authKeys) reset() {
	if err := os.WriteFile(a.file, []byte(a.orig), 0o644); err != nil {
		a.t.Fatal(err)
	}
}

// A remembered authentication failure is never retried (by default), until
// ForgetAuthFailures, as the server calls on reload; then the fixed
// credentials work.
func TestForgetAuthFailures(t *testing.T) {
	tests := []struct {
		name      string
		keyFile   func(s *sshtest.Server, dir string) string // the target's private-key
		fragment  string                                     // in the failure
		wantConns int                                        // sshd connections for the failure
		fix       func(t *testing.T, s *sshtest.Server, keyFile string)
	}{
		{"key authorized on the target",
			func(s *sshtest.Server, dir string) string { return keygen(t, dir, "wrong", "") },
			"unable to authenticate", 1,
			func(t *testing.T, s *sshtest.Server, keyFile string) { newAuthKeys(t, s).allow(keyFile) }},
		{"key file replaced",
			func(s *sshtest.Server, dir string) string { return keygen(t, dir, "wrong", "") },
			"unable to authenticate", 1,
			func(t *testing.T, s *sshtest.Server, keyFile string) {
				if err := os.WriteFile(keyFile, s.ClientKeyPEM, 0o600); err != nil {
					t.Fatal(err)
				}
			}},
		{"missing key file created",
			func(s *sshtest.Server, dir string) string { return filepath.Join(dir, "missing") },
			"cannot load private key", 0,
			func(t *testing.T, s *sshtest.Server, keyFile string) {
				if err := os.WriteFile(keyFile, s.ClientKeyPEM, 0o600); err != nil {
					t.Fatal(err)
				}
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := sshtest.Start(t, sshtest.Options{})
			tr := newTransport(t, s)
			keyFile := tc.keyFile(s, t.TempDir())
			tg := target(s, map[string]any{"private-key": keyFile})
			wantErr(t, run(t, tr, tg, "true").Err, muster.KindAuth, "AUTH_ERROR", "web1", tc.fragment)
			tc.fix(t, s, keyFile)
			// Fixed, but still remembered: not retried.
			wantErr(t, run(t, tr, tg, "true").Err, muster.KindAuth, "AUTH_ERROR", "web1", tc.fragment)
			if n := s.ConnectionsAccepted(); n != tc.wantConns {
				t.Fatalf("sshd accepted %d connections before ForgetAuthFailures, want %d", n, tc.wantConns)
			}
			tr.ForgetAuthFailures()
			if r := run(t, tr, tg, "id -un"); r.Err != nil || r.Stdout != sshtest.User+"\n" {
				t.Fatalf("after ForgetAuthFailures: %+v", r)
			}
			if n := s.ConnectionsAccepted(); n != tc.wantConns+1 {
				t.Errorf("sshd accepted %d connections, want %d", n, tc.wantConns+1)
			}
		})
	}
}

// fakeClock is a clock that moves only when told.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// With AuthRetryAfter, a failed authentication is retried after a backoff
// that doubles with each failure in a row and starts over after a success;
// until then Execs fail at once, without connecting. Without it, a failure
// is never retried, however much time passes.
func TestAuthRetryAfter(t *testing.T) {
	type step struct {
		advance   time.Duration
		do        string   // "allow", "deny" (the wrong key), "release" the target, "forget" failures
		wantConns int      // sshd connections accepted after the Exec
		wantErr   []string // fragments of the failure; nil: success
	}
	first := []string{"Authentication failed for web1", "unable to authenticate"}
	tests := []struct {
		name       string
		retryAfter time.Duration
		steps      []step
	}{
		{"never by default", 0, []step{
			{0, "", 1, first},
			{1000 * time.Hour, "", 1, first},
			{1000 * time.Hour, "allow", 1, first},
			{0, "forget", 2, nil},
		}},
		{"backoff", time.Minute, []step{
			{0, "", 1, first},
			{30 * time.Second, "", 1, []string{"authentication for web1", "failed 30s ago", "publickey",
				"not retried until 30s from now"}},
			{30 * time.Second, "", 2, first},
			{time.Minute, "", 2, []string{"failed 1m0s ago", "not retried until 1m0s from now", "2 failures in a row"}},
			{time.Minute, "allow", 3, nil}, // the backoff is over, and the key is allowed now
			{time.Hour, "deny", 3, nil},    // the connection is still open
			{0, "release", 4, first},
			{59 * time.Second, "", 4, []string{"failed 59s ago", "not retried until 1s from now"}}, // success reset the backoff
			{0, "forget", 5, first},
			{0, "", 5, []string{"failed 0s ago", "not retried until 1m0s from now"}},
		}},
		{"backoff capped", 10 * time.Minute, []step{
			{0, "", 1, first},
			{10 * time.Minute, "", 2, first},
			{20 * time.Minute, "", 3, first},
			{29 * time.Minute, "", 3, []string{"not retried until 1m0s from now", "3 failures in a row"}}, // capped at 30m, not 40m
			{time.Minute, "", 4, first},
			{30 * time.Minute, "", 5, first},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := sshtest.Start(t, sshtest.Options{})
			clock := &fakeClock{now: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
			tr := ssh.New(ssh.Options{KnownHostsFiles: []string{s.KnownHostsFile}, SSHConfigFile: "none",
				AuthRetryAfter: tc.retryAfter})
			ssh.SetClock(tr, clock.Now)
			t.Cleanup(func() { tr.Close() })
			wrong := keygen(t, t.TempDir(), "wrong", "")
			keys := newAuthKeys(t, s)
			tg := target(s, map[string]any{"private-key": wrong})
			for i, st := range tc.steps {
				clock.advance(st.advance)
				switch st.do {
				case "allow":
					keys.allow(wrong)
				case "deny":
					keys.reset()
				case "release":
					tr.Release(tg)
				case "forget":
					tr.ForgetAuthFailures()
				}
				r := run(t, tr, tg, "echo ok")
				desc := fmt.Sprintf("step %d (+%v %s)", i+1, st.advance, st.do)
				if st.wantErr == nil {
					if r.Err != nil || r.Stdout != "ok\n" {
						t.Fatalf("%s: %+v", desc, r)
					}
				} else {
					if r.Err == nil {
						t.Fatalf("%s: succeeded, want an authentication failure", desc)
					}
					t.Logf("%s: %v", desc, r.Err)
					wantErr(t, r.Err, muster.KindAuth, "AUTH_ERROR", st.wantErr...)
				}
				if n := s.ConnectionsAccepted(); n != st.wantConns {
					t.Fatalf("%s: sshd accepted %d connections, want %d", desc, n, st.wantConns)
				}
			}
		})
	}
}

// Targets that share an endpoint and credentials share its remembered
// authentication failure: one connection in all, and each target's error
// names that target.
func TestAuthFailureSharedByAliases(t *testing.T) {
	s := sshtest.Start(t, sshtest.Options{})
	tr := newTransport(t, s)
	wrong := keygen(t, t.TempDir(), "wrong", "")
	for _, name := range []string{"a1", "a2", "a1", "a3"} {
		tg := target(s, map[string]any{"private-key": wrong})
		tg.Name = name
		wantErr(t, run(t, tr, tg, "true").Err, muster.KindAuth, "AUTH_ERROR",
			"Authentication failed for "+name+" (", "unable to authenticate")
	}
	if n := s.ConnectionsAccepted(); n != 1 {
		t.Errorf("sshd accepted %d connections, want 1", n)
	}
}
