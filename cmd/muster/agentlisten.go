package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/muster-run/muster"
	"github.com/muster-run/muster/internal/api"
	"github.com/muster-run/muster/internal/events"
	"github.com/muster-run/muster/internal/pki"
	"github.com/muster-run/muster/internal/project"
	"github.com/muster-run/muster/internal/pull"
	"github.com/muster-run/muster/internal/server/checkins"
	"github.com/muster-run/muster/internal/server/dispatch"
)

// agentListener is the server's mTLS listener for agents (--agent-listen).
type agentListener struct {
	srv   *http.Server
	ln    net.Listener
	cins  *checkins.Server
	sched *pull.Scheduler
}

// startAgentListener serves the check-in protocol on addr with the CA.
// Pull mode needs the project's pull.yaml.
func startAgentListener(ctx context.Context, wg *sync.WaitGroup, addr string, ca *pki.CA, store muster.Store,
	live *project.Live, hub *events.Hub, log *slog.Logger) (*agentListener, error) {
	p := live.Current()
	if p.Pull == nil {
		return nil, inputError{fmt.Errorf("--agent-listen needs a pull-mode configuration: write %s (backends and runs; see the README's pull-mode tour)",
			live.Options().PullPath())}
	}
	sched := pull.New(p.Pull, pull.Options{})
	cins, err := checkins.New(checkins.Config{Store: store, CA: ca, Scheduler: sched, Events: hub, Logger: log,
		Groups: newGroupIndex(live).of})
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("cannot listen for agents on %s: %w", addr, err)
	}
	hosts := []string{"localhost", "127.0.0.1", "::1"}
	if h, _, err := net.SplitHostPort(addr); err == nil && h != "" && h != "0.0.0.0" && h != "::" {
		hosts = append(hosts, h)
	}
	if name, err := os.Hostname(); err == nil {
		hosts = append(hosts, name)
	}
	tlsCfg, err := cins.TLSConfig(hosts)
	if err != nil {
		ln.Close()
		return nil, err
	}
	srv := &http.Server{Handler: cins, ReadHeaderTimeout: 10 * time.Second, TLSConfig: tlsCfg,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	al := &agentListener{srv: srv, ln: ln, cins: cins, sched: sched}
	// The fleet's places in the interval are ranked among every known node
	// from the start, not only among those that checked in since.
	if nodes, err := store.ListNodes(ctx); err == nil {
		names := make([]string, 0, len(nodes))
		for _, n := range nodes {
			if n.State == muster.NodeSigned {
				names = append(names, n.Certname)
			}
		}
		sched.Register(time.Now(), names...)
	}
	wg.Go(func() { probeBackends(ctx, live, sched, log) })
	wg.Go(func() { cins.SyncLoad(ctx, loadSyncInterval) })
	wg.Go(func() {
		if err := srv.Serve(tls.NewListener(ln, tlsCfg)); !errors.Is(err, http.ErrServerClosed) {
			log.Error("agent listener failed", "err", err)
		}
	})
	log.Info("listening for agents (mTLS)", "agents", "https://"+ln.Addr().String(), "ca_fingerprint", ca.Fingerprint(),
		"pull_config", p.PullFile)
	return al, nil
}

// reload hands a reloaded project's pull configuration to the scheduler.
func (al *agentListener) reload(p *project.Project) {
	if al != nil && p.Pull != nil {
		al.sched.Reload(p.Pull)
	}
}

// close stops the listener; held check-ins end at once.
func (al *agentListener) close(ctx context.Context) {
	if al != nil {
		_ = al.srv.Shutdown(ctx)
	}
}

// groupIndex answers which inventory groups hold a node, for pull.yaml's
// group matches. It is asked on every check-in, so it maps every target to
// its groups once per loaded project instead of walking the inventory.
type groupIndex struct {
	live  *project.Live
	mu    sync.Mutex
	built *project.Project
	m     map[string][]string
}

func newGroupIndex(live *project.Live) *groupIndex { return &groupIndex{live: live} }

func (g *groupIndex) of(certname string) []string {
	p := g.live.Current()
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.built != p {
		g.m = map[string][]string{}
		for _, name := range p.Inventory.GroupNames() {
			ts, _ := p.Inventory.Group(name)
			for _, t := range ts {
				g.m[t.Name] = append(g.m[t.Name], name)
			}
		}
		g.built = p
	}
	return g.m[certname]
}

// live is what this server knows of a node beyond the store: when it last
// checked in here and when it was told to come back.
func (al *agentListener) live(certname string) (api.NodeLive, bool) {
	if al == nil {
		return api.NodeLive{}, false
	}
	last, next, ok := al.cins.Seen(certname)
	return api.NodeLive{LastCheckIn: last, NextCheckIn: next}, ok
}

// loadSyncInterval is how often the scheduler's count of runs per backend
// is corrected from the database (which holds every server's runs).
const loadSyncInterval = 2 * time.Second

// probeInterval is how often the backends' health probes run.
const probeInterval = 5 * time.Second

// probeBackends probes every backend that declares a health check, every
// probeInterval, until ctx ends, and tells the scheduler: a backend with a
// probe takes no runs until its first good answer.
func probeBackends(ctx context.Context, live *project.Live, sched *pull.Scheduler, log *slog.Logger) {
	client := &http.Client{}
	t := time.NewTicker(probeInterval)
	defer t.Stop()
	failing := map[string]bool{}
	for {
		if p := live.Current().Pull; p != nil {
			for _, b := range p.Backends {
				if b.Health == nil {
					continue
				}
				r := dispatch.Probe(ctx, client, b.Health.URL, probeInterval)
				ok := r.Err == nil && r.OK
				if ok == failing[b.Name] { // it changed
					if !ok {
						log.Warn("backend unhealthy: no pull runs start on it", "backend", b.Name, "url", b.Health.URL, "status", r.Status, "err", r.Err)
					} else {
						log.Info("backend healthy again", "backend", b.Name)
					}
				}
				failing[b.Name] = !ok
				sched.SetHealth(b.Name, ok, r.Load)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
