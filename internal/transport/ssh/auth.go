package ssh

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	xssh "golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/muster-run/muster"
)

// keyCache holds parsed private keys and known_hosts files for the life of a
// Transport, so that no Exec reads or parses them again.
type keyCache struct {
	mu      sync.Mutex
	signers map[string]signerResult // by path, or "data:"+digest
	hosts   map[string]hostsResult  // by joined file list
}

type signerResult struct {
	signer    xssh.Signer
	encrypted bool
	err       error
}

type hostsResult struct {
	cb  xssh.HostKeyCallback
	err error
}

func (c *keyCache) signer(id string, load func() ([]byte, error)) signerResult {
	c.mu.Lock()
	defer c.mu.Unlock()
	if r, ok := c.signers[id]; ok {
		return r
	}
	var r signerResult
	b, err := load()
	if err != nil {
		r.err = err
	} else if s, err := xssh.ParsePrivateKey(b); err != nil {
		var pm *xssh.PassphraseMissingError
		r.encrypted = errors.As(err, &pm)
		r.err = err
	} else {
		r.signer = s
	}
	if c.signers == nil {
		c.signers = map[string]signerResult{}
	}
	c.signers[id] = r
	return r
}

// forgetSigners drops the private keys read so far, and the errors reading
// them, so that they are read again.
func (c *keyCache) forgetSigners() {
	c.mu.Lock()
	c.signers = nil
	c.mu.Unlock()
}

func (c *keyCache) knownHosts(files []string) hostsResult {
	id := strings.Join(files, "\x00")
	c.mu.Lock()
	defer c.mu.Unlock()
	if r, ok := c.hosts[id]; ok {
		return r
	}
	var exist []string
	for _, f := range files {
		if f == "/dev/null" {
			continue
		}
		if _, err := os.Stat(f); err == nil {
			exist = append(exist, f)
		}
	}
	var r hostsResult
	if len(exist) == 0 {
		r.cb = func(string, net.Addr, xssh.PublicKey) error { return &knownhosts.KeyError{} }
	} else {
		r.cb, r.err = knownhosts.New(exist...)
	}
	if c.hosts == nil {
		c.hosts = map[string]hostsResult{}
	}
	c.hosts[id] = r
	return r
}

// authError is a KindAuth error; such failures are remembered and not
// retried (see Options.AuthRetryAfter).
func authError(p *params, format string, args ...any) *muster.Error {
	return muster.Errorf(muster.KindAuth, "%s%s", authPrefix(p), fmt.Sprintf(format, args...)).WithCode("AUTH_ERROR")
}

func authPrefix(p *params) string {
	return fmt.Sprintf("Authentication failed for %s (%s@%s): ", p.name, p.user, p.addr())
}

// maxAuthBackoff and maxAuthBackoffFactor cap the wait before a failed
// authentication is tried again (see Options.AuthRetryAfter).
const (
	maxAuthBackoff       = 30 * time.Minute
	maxAuthBackoffFactor = 32
)

// authFailure is a remembered authentication failure of one pool key.
type authFailure struct {
	name     string    // the target whose dial failed
	err      error     // the failure
	detail   string    // its message without the "Authentication failed for" prefix
	at       time.Time // when it failed
	failures int       // how many dials in a row failed to authenticate
	retryAt  time.Time // when it may be tried again, with AuthRetryAfter
}

// rememberAuthFailure records that the dial of key for p failed to
// authenticate with err. t.mu must be held.
func (t *Transport) rememberAuthFailure(key string, p *params, err error) {
	n := 1
	if f := t.authFailed[key]; f != nil {
		n = f.failures + 1
	}
	now := t.now()
	t.authFailed[key] = &authFailure{name: p.name, err: err, detail: strings.TrimPrefix(err.Error(), authPrefix(p)),
		at: now, failures: n, retryAt: now.Add(t.authBackoff(n))}
}

// authBackoff is the wait after n authentication failures in a row:
// AuthRetryAfter, doubled for each failure after the first, capped.
func (t *Transport) authBackoff(n int) time.Duration {
	d := t.opts.AuthRetryAfter
	if d <= 0 {
		return 0
	}
	limit := max(d, min(maxAuthBackoffFactor*d, maxAuthBackoff))
	for i := 1; i < n && d < limit; i++ {
		d *= 2
	}
	return min(d, limit)
}

// authBlocked returns the error for an Exec on p when key failed to
// authenticate and may not be tried again yet: always without
// AuthRetryAfter (a run never retries a failed authentication), else until
// the backoff is over. t.mu must be held.
func (t *Transport) authBlocked(key string, p *params) error {
	f := t.authFailed[key]
	if f == nil {
		return nil
	}
	if t.opts.AuthRetryAfter <= 0 {
		if f.name == p.name {
			return f.err
		}
		e := authError(p, "%s", f.detail) // another target with the same endpoint and credentials
		e.Err = f.err
		return e
	}
	now := t.now()
	if !now.Before(f.retryAt) {
		return nil
	}
	inARow := ""
	if f.failures > 1 {
		inARow = fmt.Sprintf(", after %d failures in a row", f.failures)
	}
	wait := f.retryAt.Sub(now)
	if r := wait.Truncate(time.Second); r < wait {
		wait = r + time.Second
	}
	e := muster.Errorf(muster.KindAuth, "authentication for %s (%s@%s) failed %s ago: %s; not retried until %s from now (%s%s)",
		p.name, p.user, p.addr(), now.Sub(f.at).Truncate(time.Second), f.detail, wait,
		f.retryAt.UTC().Format(time.RFC3339), inARow).WithCode("AUTH_ERROR").
		WithDetail("failed_at", f.at.UTC().Format(time.RFC3339)).
		WithDetail("retry_at", f.retryAt.UTC().Format(time.RFC3339))
	e.Err = f.err
	return e
}

// ForgetAuthFailures clears every remembered authentication failure, and
// the private keys read so far, so that the next Exec on any target reads
// its key again and authenticates again, whatever Options.AuthRetryAfter
// says. Long-running callers call it when credentials may have been fixed:
// the server on reload (SIGHUP, or a change of project). A dial under way
// when it is called is not remembered if it fails. Connections already
// open are kept.
func (t *Transport) ForgetAuthFailures() {
	t.mu.Lock()
	clear(t.authFailed)
	t.authGen++
	t.mu.Unlock()
	t.keys.forgetSigners()
}

// authMethods builds the client's auth methods. The returned closer releases
// the agent connection after the handshake.
func (t *Transport) authMethods(p *params) ([]xssh.AuthMethod, func(), error) {
	var signers []xssh.Signer
	var encrypted string
	addKey := func(id string, load func() ([]byte, error), explicit bool) error {
		r := t.keys.signer(id, load)
		switch {
		case r.signer != nil:
			signers = append(signers, r.signer)
		case r.encrypted:
			encrypted = id
		case explicit:
			return authError(p, "cannot load private key %s: %v", strings.TrimPrefix(id, "data:"), r.err)
		}
		return nil
	}
	switch {
	case p.keyData != "":
		data := p.keyData
		if err := addKey("data:"+digest(data), func() ([]byte, error) { return []byte(data), nil }, true); err != nil {
			return nil, nil, err
		}
	case p.keyFile != "":
		f := p.keyFile
		if err := addKey(f, func() ([]byte, error) { return os.ReadFile(f) }, true); err != nil {
			return nil, nil, err
		}
	default:
		if home, err := os.UserHomeDir(); err == nil && p.password == "" {
			for _, n := range []string{"id_ed25519", "id_ecdsa", "id_rsa"} {
				f := home + "/.ssh/" + n
				addKey(f, func() ([]byte, error) { return os.ReadFile(f) }, false)
			}
		}
	}
	closer := func() {}
	var agentSigners func() ([]xssh.Signer, error)
	if p.useAgent {
		if c, err := net.Dial("unix", os.Getenv("SSH_AUTH_SOCK")); err == nil {
			closer = func() { c.Close() }
			agentSigners = agent.NewClient(c).Signers
		} else {
			t.logf("ssh: ssh-agent at SSH_AUTH_SOCK unreachable: %v", err)
		}
	}
	if encrypted != "" && agentSigners == nil && p.password == "" {
		closer()
		return nil, nil, authError(p, "private key %s is encrypted and no ssh-agent is available; "+
			"load it with ssh-add (and set SSH_AUTH_SOCK) or use an unencrypted key", strings.TrimPrefix(encrypted, "data:"))
	}
	var methods []xssh.AuthMethod
	if len(signers) > 0 || agentSigners != nil {
		methods = append(methods, xssh.PublicKeysCallback(func() ([]xssh.Signer, error) {
			out := append([]xssh.Signer(nil), signers...)
			if agentSigners != nil {
				if as, err := agentSigners(); err == nil {
					out = append(out, as...)
				}
			}
			return out, nil
		}))
	}
	if p.password != "" {
		pw := p.password
		methods = append(methods, xssh.Password(pw),
			xssh.KeyboardInteractive(func(_, _ string, qs []string, _ []bool) ([]string, error) {
				ans := make([]string, len(qs))
				for i := range ans {
					ans[i] = pw
				}
				return ans, nil
			}))
	}
	if len(methods) == 0 {
		closer()
		return nil, nil, authError(p, "no authentication method: set private-key or password, or run ssh-agent")
	}
	return methods, closer, nil
}

// hostKeyPreference is the order in which host key algorithms are offered:
// OpenSSH's client order for plain keys, cheapest for sshd to sign first.
// x/crypto/ssh's default puts ECDSA and RSA before Ed25519, so a server
// with an RSA and an Ed25519 host key (and no ECDSA one) signs every
// handshake with RSA: bench/fanout/sshdcpu measured ~3 ms more sshd CPU per
// connection for RSA-3072 than for Ed25519 (36.2 vs 32.9 ms). The order
// changes which of the server's keys it proves it holds, never whether that
// key is checked. DSA (ssh-dss), which x/crypto/ssh's default still offers
// and OpenSSH no longer supports, is left out.
var hostKeyPreference = []string{
	xssh.KeyAlgoED25519,
	xssh.KeyAlgoECDSA256, xssh.KeyAlgoECDSA384, xssh.KeyAlgoECDSA521,
	xssh.KeyAlgoRSASHA512, xssh.KeyAlgoRSASHA256, xssh.KeyAlgoRSA,
}

// hostKeyCallback returns the host key check for p and the host key
// algorithms to offer: with the check on, those known for it (so the server
// offers a key we can verify), in hostKeyPreference order.
func (t *Transport) hostKeyCallback(p *params) (xssh.HostKeyCallback, []string, error) {
	if !p.hostCheck {
		return xssh.InsecureIgnoreHostKey(), slices.Clone(hostKeyPreference), nil
	}
	r := t.keys.knownHosts(p.knownHosts)
	if r.err != nil {
		return nil, nil, muster.Errorf(muster.KindConnect, "target %s: reading known_hosts: %w", p.name, r.err).
			WithCode("HOST_KEY_ERROR")
	}
	algos := knownAlgos(r.cb, p.addr())
	name, files := p.name, strings.Join(p.knownHosts, ", ")
	addTo := "~/.ssh/known_hosts"
	if p.knownHostsSet {
		addTo = p.knownHosts[0]
	}
	cb := func(hostname string, remote net.Addr, key xssh.PublicKey) error {
		err := r.cb(hostname, remote, key)
		if err == nil {
			return nil
		}
		fp := xssh.FingerprintSHA256(key)
		var ke *knownhosts.KeyError
		if !errors.As(err, &ke) {
			return muster.Errorf(muster.KindConnect, "Host key verification failed for %s (%s): %v", name, hostname, err).
				WithCode("HOST_KEY_ERROR")
		}
		if len(ke.Want) == 0 {
			return muster.Errorf(muster.KindConnect,
				"Host key verification failed for %s: host %s is not in known_hosts (%s); it offered %s key %s. "+
					"Check the fingerprint, then add the key (ssh-keyscan -p %d %s >> %s) or set host-key-check: false (--no-host-key-check)",
				name, hostname, files, key.Type(), fp, p.port, p.host, addTo).WithCode("HOST_KEY_ERROR").
				WithDetail("fingerprint", fp)
		}
		var want []string
		for _, k := range ke.Want {
			want = append(want, fmt.Sprintf("%s %s (%s:%d)", k.Key.Type(), xssh.FingerprintSHA256(k.Key), k.Filename, k.Line))
		}
		return muster.Errorf(muster.KindConnect,
			"Host key verification failed for %s: HOST KEY MISMATCH for %s: it offered %s key %s, known_hosts expects %s. "+
				"Someone may be intercepting the connection, or the host was reinstalled; refusing to connect",
			name, hostname, key.Type(), fp, strings.Join(want, ", ")).WithCode("HOST_KEY_ERROR").
			WithDetail("fingerprint", fp)
	}
	return cb, algos, nil
}

// knownAlgos lists the host key algorithms known_hosts holds for addr, by
// asking the callback about a key no one has.
func knownAlgos(cb xssh.HostKeyCallback, addr string) []string {
	err := cb(addr, &net.TCPAddr{IP: net.IPv6zero}, probeKey)
	var ke *knownhosts.KeyError
	if !errors.As(err, &ke) || len(ke.Want) == 0 {
		return nil
	}
	var out []string
	seen := map[string]bool{}
	add := func(a ...string) {
		for _, x := range a {
			if !seen[x] {
				seen[x] = true
				out = append(out, x)
			}
		}
	}
	for _, k := range ke.Want {
		switch t := k.Key.Type(); t {
		case xssh.KeyAlgoRSA:
			add(xssh.KeyAlgoRSASHA512, xssh.KeyAlgoRSASHA256, xssh.KeyAlgoRSA)
		default:
			add(t)
		}
	}
	// known_hosts lists keys in whatever order they were added.
	rank := func(a string) int {
		if i := slices.Index(hostKeyPreference, a); i >= 0 {
			return i
		}
		return len(hostKeyPreference)
	}
	slices.SortStableFunc(out, func(a, b string) int { return rank(a) - rank(b) })
	return out
}

// probeKey is a public key no host has, used by knownAlgos.
var probeKey = func() xssh.PublicKey {
	k, err := xssh.NewPublicKey(ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize)).Public())
	if err != nil {
		panic(err)
	}
	return k
}()
