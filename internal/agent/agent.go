// Package agent is `muster agent`: the daemon on each pull-mode node. It
// holds the node's identity (an ed25519 key and the certificate the
// server's CA signed for its certname), checks in with the server over
// mutual TLS and runs what the server hands it, when the server says so.
// The server decides when every node runs, by capacity; the agent adds no
// splay of its own.
//
// Its state lives in one data directory: key.pem (0600), cert.pem,
// ca.pem, and spool/, where every report is written before it is sent and
// removed only once the server has it, so a report survives an
// unreachable server, a crash and a kill -9.
//
// The agent never evaluates what the server sends: a run is a command
// line with an environment, run by an Exec function that cmd/muster wires
// to the engine and the local transport (adapters do not import each
// other). File watching is injected the same way.
package agent

import (
	"context"
	"crypto"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/muster-run/muster/internal/checkin"
)

// Exec runs one command line on this node with env added to the
// environment, writing its output to the two writers, and returns its exit
// status. Cancelling ctx stops it.
type Exec func(ctx context.Context, run checkin.Run, stdout, stderr *TailBuffer) (exitCode int, err error)

// Watch watches files and directories (which may not exist yet) until ctx
// ends, calling changed with the paths that changed after each burst.
type Watch func(ctx context.Context, paths []string, changed func(paths []string)) error

// Config configures an agent. Server, DataDir, Certname and Exec are
// required; an agent without a certificate also needs EnrollToken and
// CAFingerprint (or InsecureFirstContact).
type Config struct {
	// Server is the server's agent listener, host:port.
	Server   string
	DataDir  string
	Certname string
	// EnrollToken is used once, on first start, to ask for a certificate.
	EnrollToken string
	// CAFingerprint pins the server's CA at first contact ("sha256:...",
	// printed by the server at start and by `muster cert ca`).
	CAFingerprint string
	// InsecureFirstContact trusts whatever CA the server presents at
	// first contact (and logs loudly that it did). Later contacts always
	// check against the CA saved then.
	InsecureFirstContact bool
	// Wait is how long a check-in may be held open by the server (long
	// poll); default 60s.
	Wait time.Duration
	// OfflineRunAfter, when positive, runs the last command the server
	// handed out on the agent's own slot once the server has been
	// unreachable this long, so the node's state is still enforced.
	OfflineRunAfter time.Duration
	// Interval is the offline slot's period; default 30m.
	Interval time.Duration
	// ExtraWatch lists local paths whose change forces a run, besides the
	// ones the server lists.
	ExtraWatch []string
	// FactsCommand, when set, is run (sh -c) when the server asks for
	// facts; its JSON object is merged over the agent's own facts
	// ("facter --json" gives Facter's full set).
	FactsCommand string
	// KeepResident keeps the pages of the executable that start-up and
	// runs touched (by default an idle agent gives them back: see
	// trimResident); for measuring the difference.
	KeepResident bool
	Exec         Exec
	Watch        Watch // nil: no file watching
	Logger       *slog.Logger
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Agent is a running agent.
type Agent struct {
	cfg Config
	log *slog.Logger
	now func() time.Time

	mu        sync.Mutex
	key       crypto.Signer
	cert      *tls.Certificate
	caDER     []byte
	client    *client
	changed   []string      // watched files changed since the last check-in
	wake      chan struct{} // a watched file changed: check in now
	watchMu   sync.Mutex
	watched   []string
	stopWatch context.CancelFunc

	lastContact time.Time
	lastRun     time.Time
	lastCommand *checkin.Run // the latest run handed out, for offline runs
}

// New checks cfg and returns an agent; Run starts it.
func New(cfg Config) (*Agent, error) {
	switch {
	case cfg.Server == "":
		return nil, errors.New("agent: --server HOST:PORT is required")
	case cfg.DataDir == "":
		return nil, errors.New("agent: --data-dir is required")
	case cfg.Certname == "":
		return nil, errors.New("agent: no certname: pass --certname")
	case cfg.Exec == nil:
		return nil, errors.New("agent: Config.Exec is required")
	}
	if cfg.Wait <= 0 {
		cfg.Wait = 60 * time.Second
	}
	if cfg.Interval <= 0 {
		cfg.Interval = 30 * time.Minute
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if err := os.MkdirAll(filepath.Join(cfg.DataDir, "spool"), 0o700); err != nil {
		return nil, fmt.Errorf("agent: data directory: %w", err)
	}
	return &Agent{cfg: cfg, log: cfg.Logger.With("certname", cfg.Certname), now: cfg.Now, wake: make(chan struct{}, 1)}, nil
}

// Run enrolls if the agent has no certificate yet, then checks in and runs
// what the server hands out until ctx ends. Its end is graceful: a run in
// progress is stopped, its report spooled, and the spool flushed as far as
// the server answers within a few seconds.
func (a *Agent) Run(ctx context.Context) error {
	if err := a.loadIdentity(ctx); err != nil {
		return err
	}
	a.reportInterrupted()
	var wg sync.WaitGroup
	defer wg.Wait()
	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	a.rewatch(watchCtx, &wg, nil)

	backoff, trimmed := time.Second, false
	for {
		if ctx.Err() != nil {
			a.flushOnExit()
			return nil
		}
		a.flushSpool(ctx)
		if !trimmed && !a.cfg.KeepResident { // idle from here: release what start-up or the run touched
			trimResident()
			trimmed = true
		}
		resp, err := a.checkIn(ctx)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, errRecheck) {
				continue
			}
			delay := jitter(backoff)
			a.log.Warn("check-in failed; retrying", "err", err, "retry_in", delay.Round(time.Millisecond))
			a.maybeRunOffline(ctx)
			if !a.sleep(ctx, delay) {
				continue
			}
			backoff = min(2*backoff, 5*time.Minute)
			continue
		}
		backoff = time.Second
		a.rewatch(watchCtx, &wg, resp.Watch)
		if !resp.CertRenewAt.IsZero() && !a.now().Before(resp.CertRenewAt) {
			if err := a.renew(ctx); err != nil {
				a.log.Warn("certificate renewal failed; will retry at the next check-in", "err", err)
			}
		}
		if resp.UploadFacts {
			a.uploadFacts(ctx)
		}
		if resp.Run != nil {
			a.execute(ctx, *resp.Run)
			trimmed = false
			continue // report, then check in again at once
		}
		a.sleep(ctx, resp.Next.Sub(a.now()))
	}
}

// sleep waits d, or until a watched file changes or ctx ends. It reports
// whether it slept the whole time.
func (a *Agent) sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-a.wake:
		return false
	case <-ctx.Done():
		return false
	}
}

// jitter spreads retries of many agents that lost the server together.
func jitter(d time.Duration) time.Duration {
	return d/2 + rand.N(d/2+1)
}

// rewatch (re)starts the file watch when the list of watched paths
// changed: the server's list plus the local extras.
func (a *Agent) rewatch(ctx context.Context, wg *sync.WaitGroup, server []string) {
	if a.cfg.Watch == nil {
		return
	}
	paths := append(append([]string{}, server...), a.cfg.ExtraWatch...)
	a.watchMu.Lock()
	defer a.watchMu.Unlock()
	if a.watched != nil && slices.Equal(a.watched, paths) {
		return
	}
	a.watched = paths
	if len(paths) == 0 {
		return
	}
	wctx, cancel := context.WithCancel(ctx)
	prev := a.stopWatch
	a.stopWatch = cancel
	if prev != nil {
		prev()
	}
	wg.Go(func() {
		err := a.cfg.Watch(wctx, paths, func(changed []string) {
			a.mu.Lock()
			a.changed = append(a.changed, changed...)
			a.mu.Unlock()
			a.log.Info("watched files changed: asking for a run", "files", changed)
			select {
			case a.wake <- struct{}{}:
			default:
			}
		})
		if err != nil && wctx.Err() == nil {
			a.log.Warn("not watching files", "err", err)
		}
	})
}
