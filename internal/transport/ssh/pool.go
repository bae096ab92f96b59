package ssh

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync/atomic"
	"time"

	xssh "golang.org/x/crypto/ssh"

	"github.com/muster-run/muster"
)

// maxHandshakesPerBastion keeps unauthenticated connections through one
// bastion below sshd's default MaxStartups (10).
const maxHandshakesPerBastion = 10

// Preferred algorithms: cheap, modern key exchange first.
var (
	kexAlgos = []string{
		xssh.KeyExchangeCurve25519, "curve25519-sha256@libssh.org",
		xssh.KeyExchangeMLKEM768X25519, xssh.KeyExchangeECDHP256,
		xssh.KeyExchangeECDHP384, xssh.KeyExchangeECDHP521, xssh.KeyExchangeDH14SHA256,
	}
	cipherAlgos = []string{
		xssh.CipherAES128GCM, xssh.CipherChaCha20Poly1305, xssh.CipherAES256GCM,
		xssh.CipherAES128CTR, xssh.CipherAES256CTR,
	}
)

// slot is a pool entry; ready is closed when the single dial for it ends.
type slot struct {
	key   string // its params.poolKey
	ready chan struct{}
	c     *conn
	err   error
	// users holds the names of the targets that asked for the connection
	// and were not released since (guarded by Transport.mu). Targets that
	// share user, host, port, credentials and route share the connection;
	// releasing the last of them closes it.
	users map[string]struct{}
	// authGen is Transport.authGen when the dial began: a failure is not
	// remembered past a ForgetAuthFailures that came during the dial.
	authGen int
}

// errUnused ends the dial of a slot that every target using it released
// before it was ready; getConn dials again for a caller still waiting.
var errUnused = errors.New("ssh connection released while it was dialled")

// conn is one pooled SSH connection.
type conn struct {
	client     *xssh.Client
	tcp        *net.TCPConn  // the socket under client; nil through a bastion
	sem        chan struct{} // one token per open session (MaxSessions)
	handshakes chan struct{} // unauthenticated connections through this host
	done       chan struct{} // closed when the connection is gone
	bastion    atomic.Bool   // some target was reached through it
}

// close ends the connection on purpose (Release, Close).
//
// When nothing runs on it, the TCP connection is reset (SO_LINGER 0)
// instead of shut down with a FIN. x/crypto/ssh cannot send
// SSH_MSG_DISCONNECT, which is how OpenSSH's client ends a connection, and
// sshd treats a FIN as an orderly end: its session process returns through
// its main loop, asks the privileged monitor to terminate, the monitor
// reaps it, and both run their exit handlers (OpenSSL cleanup and more).
// On a reset, as on SSH_MSG_DISCONNECT, both just _exit. bench/fanout/sshdcpu
// measured the difference at ~3 ms of sshd CPU per connection (of ~28),
// and ~300 fewer page faults. Nothing is lost: every channel on it has
// been closed by both sides (the server's exit status and close arrived
// before Exec returned, and x/crypto answered the close at once), so the
// only thing sshd reads after it is the reset, which it logs as "Read
// error from remote host ...: Connection reset by peer" instead of
// "Connection closed by ...". A connection that holds a session at that
// moment (a cancelled command, or the Transport closed under one), or that
// was used as a bastion, is closed with a FIN, so that whatever is queued
// on it (a signal, a channel close) still reaches the server.
func (c *conn) close() {
	if c.tcp != nil && len(c.sem) == 0 && !c.bastion.Load() {
		c.tcp.SetLinger(0)
	}
	c.client.Close()
}

func (c *conn) alive() bool {
	select {
	case <-c.done:
		return false
	default:
		return true
	}
}

// getConn returns the pooled connection for p, dialling it once however
// many callers ask at the same time.
func (t *Transport) getConn(ctx context.Context, p *params) (*conn, error) {
	key := p.poolKey()
	for attempt := 0; ; attempt++ {
		t.mu.Lock()
		if t.closed {
			t.mu.Unlock()
			return nil, errClosed(p)
		}
		if err := t.authBlocked(key, p); err != nil {
			t.mu.Unlock()
			return nil, err
		}
		s := t.conns[key]
		if s == nil {
			s = &slot{key: key, ready: make(chan struct{}), users: map[string]struct{}{}, authGen: t.authGen}
			t.conns[key] = s
			t.wg.Add(1)
			go func() { defer t.wg.Done(); t.dialSlot(s, p) }()
		}
		t.use(s, p.name)
		t.mu.Unlock()
		select {
		case <-s.ready:
		case <-ctx.Done():
			return nil, muster.ContextError(ctx, "connecting to "+p.name)
		}
		if errors.Is(s.err, errUnused) {
			continue
		}
		if s.err != nil {
			return nil, s.err
		}
		if s.c.alive() || attempt > 0 {
			return s.c, nil
		}
		t.drop(key, s.c)
	}
}

// use records that the target named name uses s. t.mu must be held.
func (t *Transport) use(s *slot, name string) {
	s.users[name] = struct{}{}
	m := t.users[name]
	if m == nil {
		m = map[*slot]struct{}{}
		t.users[name] = m
	}
	m[s] = struct{}{}
}

// unpool removes s from the pool, if it is still there, and from its
// users' lists. t.mu must be held.
func (t *Transport) unpool(s *slot) {
	if t.conns[s.key] == s {
		delete(t.conns, s.key)
	}
	for name := range s.users {
		if m := t.users[name]; m != nil {
			delete(m, s)
			if len(m) == 0 {
				delete(t.users, name)
			}
		}
	}
}

// drop removes c from the pool (if it is still there) and closes it.
func (t *Transport) drop(key string, c *conn) {
	t.mu.Lock()
	if s := t.conns[key]; s != nil && s.c == c {
		t.unpool(s)
	}
	t.mu.Unlock()
	c.client.Close()
}

func (t *Transport) dialSlot(s *slot, p *params) {
	c, err := t.dial(p)
	t.mu.Lock()
	closed, unused := t.closed, false
	switch {
	case err != nil:
		t.unpool(s)
		if muster.KindOf(err) == muster.KindAuth && s.authGen == t.authGen {
			t.rememberAuthFailure(s.key, p, err)
		}
	case closed:
	case len(s.users) == 0:
		// Every target that asked for it was released during the dial.
		t.unpool(s)
		unused = true
	default:
		t.wg.Add(2)
		go func() { defer t.wg.Done(); t.watch(s.key, c) }()
		go func() { defer t.wg.Done(); t.keepalive(c) }()
	}
	if err == nil {
		delete(t.authFailed, s.key) // a success starts the backoff over
	}
	t.mu.Unlock()
	switch {
	case err == nil && closed:
		c.client.Close()
		err, c = errClosed(p), nil
	case unused:
		c.close()
		err, c = errUnused, nil
	}
	s.c, s.err = c, err
	close(s.ready)
}

// watch drops c from the pool when its connection ends.
func (t *Transport) watch(key string, c *conn) {
	c.client.Wait()
	close(c.done)
	t.mu.Lock()
	if s := t.conns[key]; s != nil && s.c == c {
		t.unpool(s)
	}
	t.mu.Unlock()
}

// keepalive probes c every interval and closes it when it stops answering.
func (t *Transport) keepalive(c *conn) {
	iv := t.opts.KeepaliveInterval
	if iv < 0 {
		return
	}
	tick := time.NewTicker(iv)
	defer tick.Stop()
	for {
		select {
		case <-c.done:
			return
		case <-t.ctx.Done():
			return
		case <-tick.C:
		}
		reply := make(chan error, 1)
		go func() {
			_, _, err := c.client.SendRequest("keepalive@openssh.com", true, nil)
			reply <- err
		}()
		select {
		case err := <-reply:
			if err != nil {
				c.client.Close()
				return
			}
		case <-time.After(3 * iv):
			t.logf("ssh: keepalive timed out; closing connection")
			c.client.Close()
			<-reply // SendRequest returns once the connection is closed
			return
		case <-c.done:
			<-reply
			return
		}
	}
}

// dial opens and authenticates one connection, directly or through the
// pooled bastion connection.
func (t *Transport) dial(p *params) (*conn, error) {
	ctx, cancel := context.WithTimeout(t.ctx, p.timeout)
	defer cancel()
	auth, closeAgent, err := t.authMethods(p)
	if err != nil {
		return nil, err
	}
	defer closeAgent()
	hostCB, hostAlgos, err := t.hostKeyCallback(p)
	if err != nil {
		return nil, err
	}
	t.logf("ssh: connecting to %s as %s@%s%s (%s; timeout %s)", p.name, p.user, p.addr(), via(p), p.describeAuth(), p.timeout)
	cfg := &xssh.ClientConfig{
		Config:            xssh.Config{KeyExchanges: kexAlgos, Ciphers: cipherAlgos},
		User:              p.user,
		Auth:              auth,
		HostKeyCallback:   hostCB,
		HostKeyAlgorithms: hostAlgos,
		Timeout:           p.timeout,
	}
	var nc net.Conn
	if p.jump != nil {
		jc, err := t.getConn(ctx, p.jump)
		if err != nil {
			return nil, t.dialError(ctx, p, err)
		}
		select {
		case jc.handshakes <- struct{}{}:
			defer func() { <-jc.handshakes }()
		case <-ctx.Done():
			return nil, t.dialError(ctx, p, ctx.Err())
		case <-jc.done:
			return nil, t.dialError(ctx, p, errDead)
		}
		jc.bastion.Store(true)
		nc, err = jc.client.DialContext(ctx, "tcp", p.addr())
		if err != nil {
			return nil, t.dialError(ctx, p, err)
		}
	} else {
		var d net.Dialer
		if nc, err = d.DialContext(ctx, "tcp", p.addr()); err != nil {
			return nil, t.dialError(ctx, p, err)
		}
	}
	stop := context.AfterFunc(ctx, func() { nc.Close() })
	sc, chans, reqs, err := xssh.NewClientConn(nc, p.addr(), cfg)
	if !stop() {
		if err == nil {
			sc.Close()
		}
		return nil, t.dialError(ctx, p, ctx.Err())
	}
	if err != nil {
		nc.Close()
		return nil, t.dialError(ctx, p, err)
	}
	tcp, _ := nc.(*net.TCPConn)
	return &conn{
		client:     xssh.NewClient(sc, chans, reqs),
		tcp:        tcp,
		sem:        make(chan struct{}, t.opts.MaxSessions),
		handshakes: make(chan struct{}, maxHandshakesPerBastion),
		done:       make(chan struct{}),
	}, nil
}

// dialError classifies a failure to connect.
func (t *Transport) dialError(ctx context.Context, p *params, err error) error {
	var me *muster.Error
	if errors.As(err, &me) {
		return me // host key errors, or the bastion's own error
	}
	if t.ctx.Err() != nil {
		return errClosed(p)
	}
	if ctx.Err() != nil || isTimeout(err) {
		return muster.Errorf(muster.KindConnect, "Timeout after %d seconds connecting to %s", int(p.timeout/time.Second), p.name).
			WithCode("CONNECT_ERROR").WithDetail("host", p.addr())
	}
	msg := err.Error()
	if strings.Contains(msg, "unable to authenticate") || strings.Contains(msg, "no supported methods remain") ||
		strings.Contains(msg, "too many authentication") || strings.Contains(msg, "Too many authentication") {
		return authError(p, "%v (user %s; check private-key, password or ssh-agent)", strings.TrimPrefix(msg, "ssh: handshake failed: "), p.user)
	}
	via := ""
	if p.jump != nil {
		via = " via " + p.jump.addr()
	}
	return muster.Errorf(muster.KindConnect, "Failed to connect to %s (%s%s): %w", p.name, p.addr(), via, err).
		WithCode("CONNECT_ERROR")
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// Release ends tg's use of its pooled connection, for callers that know
// they are done with the target: a one-action run, or the server's
// connection keeper once the target is idle. Targets that reach the same
// endpoint with the same user, credentials and route (aliases, several
// names for one host) share one connection, which closes when the last of
// them that used it is released, so the host's sshd processes end at once
// instead of idling until Close, and the client holds half the memory. A
// command still running on tg fails if the connection closes under it. A
// later Exec on tg connects again. Release goes by tg.Name, so it also
// ends the use of a connection tg reached with settings since changed (a
// reloaded inventory); releasing a target that holds no connection does
// nothing.
func (t *Transport) Release(tg *muster.Target) {
	var idle []*conn
	t.mu.Lock()
	for s := range t.users[tg.Name] {
		delete(s.users, tg.Name)
		if len(s.users) > 0 {
			continue
		}
		select {
		case <-s.ready:
			if s.c != nil && t.conns[s.key] == s {
				t.unpool(s)
				idle = append(idle, s.c)
			}
		default: // still dialling: dialSlot closes it unless a target asks for it by then
		}
	}
	delete(t.users, tg.Name)
	t.mu.Unlock()
	for _, c := range idle {
		c.close()
	}
}
