package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/muster-run/muster"
	"github.com/muster-run/muster/internal/action"
	"github.com/muster-run/muster/internal/api"
	"github.com/muster-run/muster/internal/engine"
	"github.com/muster-run/muster/internal/events"
	"github.com/muster-run/muster/internal/pki"
	"github.com/muster-run/muster/internal/project"
	"github.com/muster-run/muster/internal/server/dispatch"
	"github.com/muster-run/muster/internal/transport/ssh"
)

// runServer wires the server: project, secret key, store, transports,
// engine, API and dispatcher; then serves until a signal, and stops in
// order (stop claiming, let runs finish within --grace, hand back the rest).
func (a *app) runServer(c *cobra.Command, f serverFlags) error {
	if err := f.check(); err != nil {
		return err
	}
	fake, err := f.fakeBackend()
	if err != nil {
		return err
	}
	a.serving.Store(true)
	log := slog.New(slog.NewTextHandler(a.stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	ctx := c.Context()

	po, err := a.projectOptions(nil)
	if err != nil {
		return err
	}
	live, err := project.NewLive(po)
	if err != nil {
		return inputError{err}
	}
	// The port first: a server that cannot listen must not have created a
	// secret key, an admin token or a database on its way to failing.
	ln, err := net.Listen("tcp", f.listen)
	if err != nil {
		return fmt.Errorf("cannot listen on %s (is another muster server running? use --listen to pick another address): %w", f.listen, err)
	}
	defer ln.Close()
	keyPath := f.secretKey
	if keyPath == "" {
		keyPath = filepath.Join(f.dataDir, "secret.key")
	}
	box, createdKey, err := loadSecretBox(keyPath, f.secretKey == "")
	if err != nil {
		return err
	}
	store, desc, err := openStore(ctx, f.database, f.dataDir)
	if err != nil {
		return err
	}
	defer store.Close()
	if createdKey {
		log.Info("created the secret key", "file", keyPath)
		if strings.HasPrefix(f.database, "postgres") {
			log.Warn("other servers on this database need the same secret key", "file", keyPath)
		}
	}
	if err := bootstrapAdmin(ctx, store, filepath.Join(f.dataDir, "admin.token"), log); err != nil {
		return err
	}
	caDir := f.caDir
	if caDir == "" {
		caDir = f.dataDir
	}
	ca, createdCA, err := pki.LoadOrCreateCA(caDir, time.Now())
	if err != nil {
		return err
	}
	if createdCA {
		log.Info("created the agents' CA", "dir", caDir, "ca_fingerprint", ca.Fingerprint())
	}
	runner, closeRunner := a.newRunner(ssh.Options{AuthRetryAfter: f.authRetry})
	defer closeRunner()
	eng := &engine.Engine{Project: live.Current, Runner: runner, Secrets: box,
		Linger:  action.NewLinger(runner, f.keepConns, f.maxIdleConns),
		Options: engine.Options{Concurrency: f.concurrency, TmpDir: f.tmpdir, AllowLocal: f.allowLocal, Guard: queueGuard(desc)}}

	hub := events.New()       // the dispatcher publishes what it stores; event streams follow
	var agents *agentListener // with --agent-listen, started below
	var signalNodes func(context.Context, ...string) error
	if ns, ok := store.(muster.NodeSignals); ok {
		// Several servers share this database: a node asked to act here
		// may hold its check-in on another, which hears it through the
		// database; so does this one.
		ns.OnNodeSignal(func(names []string) {
			if names == nil {
				hub.PublishAllNodes()
				return
			}
			hub.PublishNode(names...)
		})
		signalNodes = ns.SignalNodes
	}
	apiSrv, err := api.NewServer(api.Config{
		Store: store, Resolve: eng.Resolve, Prepare: eng.Prepare, Sealer: box, Logger: log, Events: hub,
		SignalNodes:      signalNodes,
		MaxTargetsPerJob: f.maxTargets, MaxJobsPerMinute: f.maxJobsPerMinute,
		Inventory: func() string { return live.Current().InventoryFile },
		CA:        ca,
		NodeInfo:  func(certname string) (api.NodeLive, bool) { return agents.live(certname) },
		Capacity:  api.CapacityConfig{Slots: f.slots, MaxRunning: f.maxRunning, TargetAge: f.capacityTargetAge},
	})
	if err != nil {
		return err
	}
	metrics := apiSrv.Metrics()
	d, err := dispatch.New(dispatch.Config{
		Queue: store, Rescuer: store, Executor: runExecutor{eng: eng, fake: fake}, Server: dispatch.ServerName(),
		Slots: f.slots, BatchSize: f.batch, MaxRunning: f.maxRunning, LeaseTTL: f.leaseTTL, PollInterval: f.poll,
		Rate: f.rate, Burst: f.burst, HealthURL: f.healthURL, LoadThreshold: f.healthMaxLoad, HealthInterval: f.health,
		HealthTimeout: min(f.health, 10*time.Second), Logger: log,
		Hooks: dispatch.Hooks{
			OnStart: func(_ muster.Run, wait time.Duration) { metrics.ObserveStart(wait) },
			OnFinish: func(_ muster.Run, took time.Duration, o dispatch.Outcome) {
				metrics.ObserveFinish(took, api.RunOutcome(o.OK, o.Error))
			},
			OnAdmission:    func(open bool, _ string) { metrics.SetAdmission(open) },
			OnStored:       func(jobs []int64) { hub.Publish(jobs...) },
			OnResultChange: wireChanges(ctx, store, hub, live, signalNodes, log), // servechange.go
		},
	})
	if err != nil {
		return inputError{err}
	}

	srv := &http.Server{Handler: apiSrv, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	scheme := "http"
	if f.tlsCert != "" {
		cert, err := tls.LoadX509KeyPair(f.tlsCert, f.tlsKey)
		if err != nil {
			return usagef("TLS: %v", err)
		}
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		ln = tls.NewListener(ln, srv.TLSConfig)
		scheme = "https"
	}
	log.Info("project loaded", live.Current().Summary()...)

	var wg sync.WaitGroup
	if f.agentListen != "" {
		if agents, err = startAgentListener(ctx, &wg, f.agentListen, ca, store, live, hub, log); err != nil {
			return err
		}
	}
	// The project watch is in place before the server says it started: an
	// edit made after that is seen.
	(&reloader{live: live, transports: runner.Transports, log: log, onReload: agents.reload}).watch(ctx, &wg, f.watchProject)
	startAnnealer(ctx, &wg, store, hub, live, eng.Prepare, box, log) // deployments' hooks: deployserve.go
	log.Info("muster server started", "version", muster.Version, "api", scheme+"://"+ln.Addr().String(), "store", desc,
		"slots", f.slots, "max_running", f.maxRunning, "allow_local_targets", f.allowLocal)
	serveErr := make(chan error, 1)
	wg.Go(func() {
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			serveErr <- err
		}
	})
	wg.Go(func() { eng.Linger.Run(ctx) })
	dispatchCtx, stopDispatch := context.WithCancel(context.WithoutCancel(ctx))
	defer stopDispatch()
	dispatchDone := make(chan error, 1)
	wg.Go(func() { dispatchDone <- d.Run(dispatchCtx) })

	var runErr error
	select {
	case <-ctx.Done():
		log.Info("stopping: no new runs are claimed; running ones may finish", "grace", f.grace)
	case runErr = <-serveErr:
		log.Error("HTTP server failed", "err", runErr)
	case runErr = <-dispatchDone:
		log.Error("dispatcher stopped", "err", runErr)
	}
	graceCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), f.grace)
	defer cancel()
	if err := d.Shutdown(graceCtx); err != nil {
		log.Warn("shutdown", "err", err)
	}
	stopDispatch()
	httpCtx, cancelHTTP := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancelHTTP()
	_ = apiSrv.Close() // ends open event streams, which would hold Shutdown up
	_ = srv.Shutdown(httpCtx)
	agents.close(httpCtx)
	wg.Wait()
	cleanupCtx, cancelCleanup := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	runner.Cleanup(cleanupCtx)
	cancelCleanup()
	log.Info("muster server stopped")
	if runErr != nil {
		return runErr
	}
	if ctx.Err() != nil {
		a.interrupted.Store(false) // a requested stop is a clean exit
	}
	return nil
}
