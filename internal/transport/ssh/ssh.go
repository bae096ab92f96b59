// Package ssh is the muster.Transport over SSH, built on
// golang.org/x/crypto/ssh. It keeps one connection per target for the life
// of the Transport and runs every command as a channel on it, at most
// MaxSessions at once, so a run costs one handshake per host. Targets that
// reach the same endpoint with the same identity and route (aliases, several
// names for one host) share that connection, and its MaxSessions, until the
// last of them is released.
package ssh

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/kevinburke/ssh_config"
	xssh "golang.org/x/crypto/ssh"

	"github.com/muster-run/muster"
)

// Options configure a Transport. The zero value gives the defaults.
type Options struct {
	// KnownHostsFiles are checked for host keys. Default ~/.ssh/known_hosts
	// and /etc/ssh/ssh_known_hosts.
	KnownHostsFiles []string
	// SSHConfigFile is the OpenSSH client config to read. Default
	// ~/.ssh/config; "none" disables it.
	SSHConfigFile string
	// MaxSessions caps concurrent channels per connection (sshd's
	// MaxSessions). Default 10.
	MaxSessions int
	// KeepaliveInterval is how often each connection is probed; a
	// connection that does not answer within three intervals is dropped.
	// Default 15s; negative disables keepalives.
	KeepaliveInterval time.Duration
	// AuthRetryAfter is how long a failed authentication to an endpoint is
	// remembered before a later Exec may try it again. Until then, Execs
	// that need the endpoint fail at once with a muster.KindAuth error that
	// says when it failed and when it will be retried, without connecting:
	// OpenSSH 9.8 and later penalise source addresses that keep failing to
	// authenticate. The wait doubles with each failure in a row, up to 32
	// times AuthRetryAfter or 30 minutes, whichever is less (but never less
	// than AuthRetryAfter), and starts over after a success. The default, 0,
	// never retries a failed authentication for the life of the Transport
	// (one CLI run); ForgetAuthFailures clears the failures in either case.
	AuthRetryAfter time.Duration
	// Override holds connection settings that win over every target's
	// ssh config (the command line's --user, --port, --private-key, ...),
	// shaped like an ssh config section: user, port, private-key,
	// password, host-key-check, known-hosts, connect-timeout. A user or
	// port written in a target's URI still wins over them.
	Override map[string]any
	// Logf, if set, receives debug messages.
	Logf func(format string, args ...any)
}

// Transport runs commands over pooled SSH connections. It is safe for
// concurrent use.
type Transport struct {
	opts Options
	keys keyCache
	now  func() time.Time // the clock for authentication backoffs

	cfgOnce sync.Once
	cfg     *ssh_config.Config

	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc

	mu         sync.Mutex
	closed     bool
	conns      map[string]*slot              // by params.poolKey
	users      map[string]map[*slot]struct{} // the pool slots each target name uses
	authFailed map[string]*authFailure       // by params.poolKey
	authGen    int                           // counts ForgetAuthFailures calls
	wg         sync.WaitGroup                // every goroutine the Transport started
}

var _ muster.Transport = (*Transport)(nil)

// New returns a Transport.
func New(opts Options) *Transport {
	if opts.KnownHostsFiles == nil {
		opts.KnownHostsFiles = []string{expandHome("~/.ssh/known_hosts"), "/etc/ssh/ssh_known_hosts"}
	}
	if opts.SSHConfigFile == "" {
		opts.SSHConfigFile = "~/.ssh/config"
	}
	if opts.MaxSessions <= 0 {
		opts.MaxSessions = 10
	}
	if opts.KeepaliveInterval == 0 {
		opts.KeepaliveInterval = 15 * time.Second
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Transport{opts: opts, ctx: ctx, cancel: cancel, now: time.Now,
		conns: map[string]*slot{}, users: map[string]map[*slot]struct{}{}, authFailed: map[string]*authFailure{}}
}

func (t *Transport) logf(format string, args ...any) {
	if t.opts.Logf != nil {
		t.opts.Logf(format, args...)
	}
}

// goStart runs f in a goroutine counted by Close, unless the Transport is
// closed.
func (t *Transport) goStart(f ...func()) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return false
	}
	t.wg.Add(len(f))
	for _, fn := range f {
		go func() { defer t.wg.Done(); fn() }()
	}
	return true
}

// Close closes every connection and waits for every goroutine the
// Transport started. Execs still running fail.
func (t *Transport) Close() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.closed = true
	var slots []*slot
	for _, s := range t.conns {
		slots = append(slots, s)
	}
	t.mu.Unlock()
	t.cancel()
	for _, s := range slots {
		select {
		case <-s.ready:
			if s.c != nil {
				s.c.close()
			}
		default: // the dialler closes it when it sees t.ctx done
		}
	}
	t.wg.Wait()
	return nil
}

func errClosed(p *params) error {
	return muster.Errorf(muster.KindCancelled, "ssh transport closed while running on %s", p.name)
}

// Exec runs cmd on tg over the target's pooled connection. See
// muster.Transport.
func (t *Transport) Exec(ctx context.Context, tg *muster.Target, cmd *muster.Command) (int, error) {
	p, err := t.resolve(tg)
	if err != nil {
		return -1, err
	}
	if ctx.Err() != nil {
		return -1, muster.ContextError(ctx, "command on "+p.name)
	}
	c, err := t.getConn(ctx, p)
	if err != nil {
		return -1, err
	}
	sess, err := t.openSession(ctx, p, c)
	if errors.Is(err, errDead) {
		// The pooled connection died since its last use: reopen it once.
		// Nothing ran on it yet, so this is safe.
		t.logf("ssh: connection to %s died (%v); reconnecting", p.name, err)
		t.drop(p.poolKey(), c)
		if c, err = t.getConn(ctx, p); err == nil {
			sess, err = t.openSession(ctx, p, c)
		}
	}
	if err != nil {
		if errors.Is(err, errDead) {
			err = muster.Errorf(muster.KindConnect, "connection to %s lost: %w", p.name, err).WithCode("CONNECT_ERROR")
		}
		return -1, err
	}
	defer func() { <-c.sem }()
	return t.run(ctx, p, sess, cmd)
}

// disconnectGrace bounds how long a cancelled Exec waits for the server to
// confirm the channel is closed.
const disconnectGrace = 5 * time.Second

func (t *Transport) run(ctx context.Context, p *params, sess *xssh.Session, cmd *muster.Command) (int, error) {
	defer sess.Close()
	stdin, err1 := sess.StdinPipe()
	stdout, err2 := sess.StdoutPipe()
	stderr, err3 := sess.StderrPipe()
	if err := errors.Join(err1, err2, err3); err != nil {
		return -1, muster.Errorf(muster.KindConnect, "session on %s: %w", p.name, err)
	}
	if err := sess.Start(cmd.Line); err != nil {
		return -1, muster.Errorf(muster.KindConnect, "starting command on %s: %w", p.name, err).WithCode("CONNECT_ERROR")
	}
	if cmd.Stdin == nil {
		stdin.Close()
	} else {
		// Like os/exec, this goroutine ends when the reader does or the
		// channel is gone; Exec does not wait for it.
		go func() {
			io.Copy(stdin, cmd.Stdin)
			stdin.Close()
		}()
	}
	var drained sync.WaitGroup
	drained.Add(2)
	done := make(chan error, 1)
	copyOut := func(w io.Writer, r io.Reader) func() {
		return func() {
			defer drained.Done()
			if w != nil {
				if _, err := io.Copy(w, r); err == nil {
					return
				}
			}
			io.Copy(io.Discard, r) // keep the window open after a writer error
		}
	}
	waiter := func() {
		err := sess.Wait()
		drained.Wait()
		done <- err
	}
	if !t.goStart(copyOut(cmd.Stdout, stdout), copyOut(cmd.Stderr, stderr), waiter) {
		return -1, errClosed(p)
	}
	var err error
	select {
	case err = <-done:
	case <-ctx.Done():
		// OpenSSH delivers the signal to the session's process group, then
		// closing the channel hangs up on it.
		sess.Signal(xssh.SIGTERM)
		sess.Close()
		select {
		case <-done:
		case <-time.After(disconnectGrace):
		}
		return -1, muster.ContextError(ctx, "command on "+p.name)
	case <-t.ctx.Done():
		return -1, errClosed(p)
	}
	var ee *xssh.ExitError
	switch {
	case err == nil:
		return 0, nil
	case errors.As(err, &ee):
		return ee.ExitStatus(), nil
	default:
		var me *xssh.ExitMissingError
		if errors.As(err, &me) {
			return -1, muster.Errorf(muster.KindConnect, "command on %s ended without an exit status (connection lost?)", p.name).
				WithCode("CONNECT_ERROR")
		}
		return -1, muster.Errorf(muster.KindConnect, "command on %s: %w", p.name, err).WithCode("CONNECT_ERROR")
	}
}

// errDead marks a session that could not open because the connection is
// gone.
var errDead = errors.New("ssh connection closed")

// openSession takes a session slot on c (waiting while MaxSessions are in
// use) and opens a channel. On success the caller must release c.sem.
func (t *Transport) openSession(ctx context.Context, p *params, c *conn) (*xssh.Session, error) {
	select {
	case c.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, muster.ContextError(ctx, "command on "+p.name)
	case <-c.done:
		return nil, errDead
	}
	for attempt := 1; ; attempt++ {
		s, err := c.client.NewSession()
		if err == nil {
			return s, nil
		}
		var oe *xssh.OpenChannelError
		if !errors.As(err, &oe) {
			<-c.sem
			return nil, fmt.Errorf("%w: %v", errDead, err)
		}
		// sshd may still count a session we just closed against
		// MaxSessions ("open failed"). A refused channel ran nothing, so
		// try again shortly.
		if attempt > 30 {
			<-c.sem
			return nil, muster.Errorf(muster.KindConnect, "opening a session on %s: %v", p.name, err).WithCode("CONNECT_ERROR")
		}
		select {
		case <-time.After(time.Duration(attempt) * 2 * time.Millisecond):
		case <-ctx.Done():
			<-c.sem
			return nil, muster.ContextError(ctx, "command on "+p.name)
		}
	}
}
