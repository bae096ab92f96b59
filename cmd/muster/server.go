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
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/muster-run/muster"
	"github.com/muster-run/muster/internal/action"
	"github.com/muster-run/muster/internal/dispatch"
	"github.com/muster-run/muster/internal/httpapi"
	"github.com/muster-run/muster/internal/ssh"
)

// serverFlags are muster server's own flags.
type serverFlags struct {
	listen, dataDir, database     string
	tlsCert, tlsKey, secretKey    string
	backend, healthURL            string
	maxRunning, slots, batch      int
	rate                          float64
	burst                         int
	healthMaxLoad                 float64
	leaseTTL, grace, poll, health time.Duration
	watchProject                  bool
	keepConns, authRetry          time.Duration
	maxIdleConns                  int
	allowLocal                    bool
	maxTargets, maxJobsPerMinute  int
}

func (a *app) serverCommand() *cobra.Command {
	var f serverFlags
	c := &cobra.Command{
		Use:   "server",
		Short: "Run the job server: an HTTP API over a durable queue that runs jobs on targets",
		Long: `Run muster as a service. Jobs submitted through its HTTP API (or with
'muster job submit') become one node-run per target in a durable queue,
and the server runs them with the same engine, inventory and module path
as the CLI: one SSH connection pool, Bolt tasks and plans.

The queue guarantees what home-made ones get wrong. A node never runs two
jobs at once (a unique index in the database), a new request for a node
that already waits with the same work merges into it, --max-running and
the optional --rate and --health-url keep the backend from being flooded,
and every run is held under a lease renewed by heartbeats, so when a
server dies another one (or the same one, restarted) requeues its runs.

State lives in SQLite under --data-dir by default, with nothing to set up.
With --database postgres://... several servers share one database: each
claims work with FOR UPDATE SKIP LOCKED, and LISTEN/NOTIFY starts new jobs
within milliseconds on any of them. Give them all the same secret key
(--secret-key-file or MUSTER_SECRET_KEY), which seals sudo passwords and
sensitive task parameters before they reach the database.

On first start the server creates an admin API token in
<data-dir>/admin.token (mode 0600), which the job commands on the same
machine use by default. Create more with 'muster token create'.

The inventory, tasks and plans are read at start, and again when their
files change (--watch-project) or on SIGHUP; a reload that fails (the log
names the file and line) keeps the previous ones. Runs already started
finish with what they started with.

SIGTERM or Ctrl-C stops claiming work, lets running jobs finish within
--grace, then hands the rest back to the queue; a second signal exits at
once.`,
		Example: `  muster server
  muster server --listen 127.0.0.1:7420 --max-running 50 --rate 20
  muster server --database postgres://muster@db/muster --listen 0.0.0.0:7420 \
      --tls-cert server.crt --tls-key server.key --secret-key-file /etc/muster/secret.key
  muster server --health-url http://puppet:8140/status --health-max-load 4`,
		Args: noArgs,
		RunE: func(c *cobra.Command, _ []string) error { return a.runServer(c, f) },
	}
	fl := c.Flags()
	fl.StringVar(&f.listen, "listen", strings.TrimPrefix(defaultServerURL, "http://"), "address for the HTTP API (loopback by default)")
	fl.StringVar(&f.dataDir, "data-dir", defaultDataDir(), "state directory: SQLite database, secret key, admin token")
	fl.StringVar(&f.database, "database", os.Getenv("MUSTER_DATABASE"), "postgres://... to share a PostgreSQL database, or a SQLite file (default <data-dir>/muster.db; env MUSTER_DATABASE)")
	fl.StringVar(&f.tlsCert, "tls-cert", "", "serve HTTPS with this certificate (PEM; with --tls-key)")
	fl.StringVar(&f.tlsKey, "tls-key", "", "private key for --tls-cert (PEM)")
	fl.StringVar(&f.secretKey, "secret-key-file", "", "key that seals job secrets (default <data-dir>/secret.key, created if missing; env MUSTER_SECRET_KEY)")
	fl.IntVar(&f.maxRunning, "max-running", 0, "most node-runs running at once across all servers (0: no global cap)")
	fl.IntVar(&f.slots, "slots", 100, "most node-runs this server runs at once")
	fl.IntVar(&f.batch, "claim-batch", 100, "most node-runs claimed in one transaction")
	fl.Float64Var(&f.rate, "rate", 0, "most node-runs started per second by this server (0: no limit)")
	fl.IntVar(&f.burst, "burst", 0, "runs that may start at once under --rate (default: one second's worth)")
	fl.StringVar(&f.healthURL, "health-url", "", "backend health probe: no new runs start while it answers non-2xx or a load above --health-max-load")
	fl.Float64Var(&f.healthMaxLoad, "health-max-load", 0, "highest load the --health-url may report ({\"load\": N} or a bare number); 0: ignore the load")
	fl.DurationVar(&f.health, "health-interval", 5*time.Second, "how often to probe --health-url")
	fl.DurationVar(&f.leaseTTL, "lease-ttl", 30*time.Second, "lease on a running node-run, renewed by heartbeats; another server requeues it after this much silence")
	fl.DurationVar(&f.grace, "grace", 30*time.Second, "on SIGTERM, how long running jobs may take to finish before they are handed back")
	fl.DurationVar(&f.poll, "poll", time.Second, "fallback poll for new work (new jobs normally start at once)")
	fl.DurationVar(&f.keepConns, "keep-connections", time.Minute, "keep a node's SSH connection open this long after its run, for its next one (0: close it after each run)")
	fl.IntVar(&f.maxIdleConns, "max-idle-connections", 1000, "most connections kept open between runs; the longest idle close first")
	fl.DurationVar(&f.authRetry, "auth-retry-after", time.Minute, "after a failed SSH authentication, later runs on that target wait this long before trying again (doubling while it keeps failing, up to 30m; a reload retries at once)")
	fl.BoolVar(&f.watchProject, "watch-project", true, "reload the inventory, tasks and plans when their files change (SIGHUP always reloads them)")
	fl.BoolVar(&f.allowLocal, "allow-local-targets", false, "let admin tokens run jobs on this machine (localhost, local://, transport: local), as the server's user; without it such jobs are refused for everyone")
	fl.IntVar(&f.maxTargets, "max-targets-per-job", 10000, "most targets one job may resolve to (0: no limit)")
	fl.IntVar(&f.maxJobsPerMinute, "max-jobs-per-minute", 120, "most jobs one API token may submit per minute to this server (0: no limit)")
	fl.StringVar(&f.backend, "backend", "", "")
	_ = fl.MarkHidden("backend") // "fake:DURATION": runs sleep and succeed, touching no target (queue benchmarks and fault tests)
	return c
}

func (a *app) runServer(c *cobra.Command, f serverFlags) error {
	if (f.tlsCert == "") != (f.tlsKey == "") {
		return usagef("--tls-cert and --tls-key go together")
	}
	if f.slots < 1 || f.batch < 1 || f.maxRunning < 0 || f.rate < 0 || f.burst < 0 {
		return usagef("--slots and --claim-batch must be at least 1, --max-running, --rate and --burst not negative")
	}
	if f.maxTargets < 0 || f.maxJobsPerMinute < 0 {
		return usagef("--max-targets-per-job and --max-jobs-per-minute must not be negative (0: no limit)")
	}
	if f.authRetry <= 0 {
		return usagef("--auth-retry-after must be positive, got %s", f.authRetry)
	}
	if f.keepConns < 0 || f.maxIdleConns < 0 {
		return usagef("--keep-connections and --max-idle-connections must not be negative")
	}
	if f.grace < 0 || f.poll <= 0 || f.health <= 0 {
		return usagef("--grace must not be negative, and --poll and --health-interval must be positive (got --grace %s, --poll %s, --health-interval %s)", f.grace, f.poll, f.health)
	}
	if f.leaseTTL < 3*time.Second {
		return usagef("--lease-ttl %s is too short: heartbeats could not keep up (use 3s or more)", f.leaseTTL)
	}
	var fake *time.Duration
	if f.backend != "" {
		d, ok := strings.CutPrefix(f.backend, "fake:")
		v, err := time.ParseDuration(d)
		if !ok || err != nil || v < 0 {
			return usagef("--backend %q: use fake:DURATION (for example fake:0 or fake:1ms)", f.backend)
		}
		fake = &v
	}
	a.serving.Store(true)
	log := slog.New(slog.NewTextHandler(a.stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	ctx := c.Context()

	eng, err := a.newJobEngine(c)
	if err != nil {
		return err
	}
	eng.fake, eng.allowLocal = fake, f.allowLocal
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
	eng.box = box
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
	runner, closeRunner := a.newRunner(ssh.Options{AuthRetryAfter: f.authRetry})
	defer closeRunner()
	eng.runner = runner
	eng.linger = action.NewLinger(runner, f.keepConns, f.maxIdleConns)

	api, err := httpapi.NewServer(httpapi.Config{
		Store: store, Resolve: eng.resolve, Prepare: eng.prepare, Sealer: box, Logger: log,
		MaxTargetsPerJob: f.maxTargets, MaxJobsPerMinute: f.maxJobsPerMinute,
		Inventory: func() string { return eng.proj.Load().inventory },
	})
	if err != nil {
		return err
	}
	metrics := api.Metrics()
	d, err := dispatch.New(dispatch.Config{
		Store: store, Executor: engineExecutor{eng}, Server: dispatch.ServerName(),
		Slots: f.slots, BatchSize: f.batch, MaxRunning: f.maxRunning, LeaseTTL: f.leaseTTL, PollInterval: f.poll,
		Rate: f.rate, Burst: f.burst, HealthURL: f.healthURL, LoadThreshold: f.healthMaxLoad, HealthInterval: f.health,
		HealthTimeout: min(f.health, 10*time.Second), Logger: log,
		Hooks: dispatch.Hooks{
			OnStart: func(_ muster.Run, wait time.Duration) { metrics.ObserveStart(wait) },
			OnFinish: func(_ muster.Run, took time.Duration, o dispatch.Outcome) {
				metrics.ObserveFinish(took, httpapi.RunOutcome(o.OK, o.Error))
			},
			OnAdmission: func(open bool, _ string) { metrics.SetAdmission(open) },
		},
	})
	if err != nil {
		return inputError{err}
	}

	srv := &http.Server{Handler: api, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
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
	log.Info("project loaded", append([]any{"dir", eng.project}, eng.proj.Load().logAttrs()...)...)
	log.Info("muster server started", "version", muster.Version, "api", scheme+"://"+ln.Addr().String(), "store", desc,
		"slots", f.slots, "max_running", f.maxRunning)

	var wg sync.WaitGroup
	serveErr := make(chan error, 1)
	wg.Go(func() {
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			serveErr <- err
		}
	})
	(&reloader{a: a, c: c, eng: eng, log: log}).watchProject(ctx, &wg, f.watchProject)
	wg.Go(func() { eng.linger.Run(ctx) })
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
	_ = api.Close() // ends open event streams, which would hold Shutdown up
	_ = srv.Shutdown(httpCtx)
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

// engineExecutor adapts the job engine to the dispatcher.
type engineExecutor struct{ e *jobEngine }

func (x engineExecutor) Execute(ctx context.Context, r muster.Run, live dispatch.Output) dispatch.Outcome {
	res := x.e.execute(ctx, r, live.Stdout, live.Stderr)
	out := dispatch.Outcome{OK: true}
	if b, err := res.MarshalJSON(); err == nil {
		out.Result = b
	}
	if code, ok := res.Value["exit_code"].(int); ok {
		out.ExitCode = code
	}
	if res.Error != nil {
		out.OK = false
		out.Error = res.Error.Kind + ": " + res.Error.Msg
		if code, ok := res.Error.Details["exit_code"].(int); ok {
			out.ExitCode = code
		}
	}
	return out
}

// newJobEngine loads what jobs need: inventory, tasks and plans.
func (a *app) newJobEngine(c *cobra.Command) (*jobEngine, error) {
	p, err := a.loadProject(c)
	if err != nil {
		return nil, err
	}
	dir, err := a.projectDir()
	if err != nil {
		return nil, err
	}
	e := &jobEngine{a: quietApp(a), project: dir}
	e.proj.Store(p)
	return e, nil
}

// bootstrapAdmin creates the first admin token when the store has none,
// and writes it to path (mode 0600) for the job commands on this machine.
func bootstrapAdmin(ctx context.Context, store muster.Store, path string, log *slog.Logger) error {
	tokens, err := store.ListTokens(ctx)
	if err != nil {
		return fmt.Errorf("reading API tokens: %w", err)
	}
	if hasLiveAdmin(tokens) {
		return nil
	}
	secretText, hash, err := httpapi.NewTokenSecret()
	if err != nil {
		return err
	}
	name := "admin"
	for i := 2; ; i++ {
		if !tokenNameTaken(tokens, name) {
			break
		}
		name = fmt.Sprintf("admin-%d", i)
	}
	_ = os.Remove(path) // a stale token file from a previous database
	if err := writeFileExcl(path, secretText+"\n"); err != nil {
		return fmt.Errorf("writing the admin token: %w", err)
	}
	if _, err := store.CreateToken(ctx, muster.Token{Name: name, Role: muster.RoleAdmin, CreatedBy: "local:" + localUser()}, hash); err != nil {
		os.Remove(path)
		// Another server on the same database may have just made one.
		if again, lerr := store.ListTokens(ctx); lerr == nil && hasLiveAdmin(again) {
			log.Info("another server created the admin token first; use its token file or 'muster token create --local'")
			return nil
		}
		return fmt.Errorf("creating the admin token: %w", err)
	}
	_ = store.Audit(ctx, muster.AuditEntry{Actor: "local:" + localUser(), Role: muster.RoleAdmin, Action: "token.create",
		Object: "token/" + name, Remote: "local", Detail: `{"bootstrap":true}`})
	log.Info("created an admin API token", "name", name, "file", path)
	return nil
}

func hasLiveAdmin(tokens []muster.Token) bool {
	for _, t := range tokens {
		if t.Role == muster.RoleAdmin && t.RevokedAt.IsZero() {
			return true
		}
	}
	return false
}

func tokenNameTaken(tokens []muster.Token, name string) bool {
	for _, t := range tokens {
		if t.Name == name && t.RevokedAt.IsZero() {
			return true
		}
	}
	return false
}

func localUser() string {
	if u := os.Getenv("USER"); u != "" {
		return u
	}
	return fmt.Sprint(os.Getuid())
}
