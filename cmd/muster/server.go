package main

import (
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/muster-run/muster/internal/engine"
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
	concurrency                   int
	tmpdir                        string
	agentListen, caDir            string
	capacityTargetAge             time.Duration
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
	fl.IntVarP(&f.concurrency, "concurrency", "c", engine.DefaultConcurrency, "how many targets each step of a plan job acts on at once, unless the job says (job submit --concurrency)")
	fl.StringVar(&f.tmpdir, "tmpdir", "", "directory on the targets for temporary files (default /tmp)")
	fl.StringVar(&f.agentListen, "agent-listen", "", "listen for pull-mode agents on this address (mTLS; e.g. 0.0.0.0:7421); needs pull.yaml in the project")
	fl.StringVar(&f.caDir, "ca-dir", "", "directory of the CA that signs agent certificates (default <data-dir>; servers sharing a database share it)")
	fl.BoolVar(&f.allowLocal, "allow-local-targets", false, "let admin tokens run jobs on this machine (localhost, local://, transport: local), as the server's user; without it such jobs are refused for everyone")
	fl.IntVar(&f.maxTargets, "max-targets-per-job", 10000, "most targets one job may resolve to (0: no limit)")
	fl.IntVar(&f.maxJobsPerMinute, "max-jobs-per-minute", 120, "most jobs one API token may submit per minute to this server (0: no limit)")
	fl.DurationVar(&f.capacityTargetAge, "capacity-target-age", 60*time.Second, "the target age of the autoscaling signal on /metrics (muster_capacity_*): workers needed so that no ready run waits longer")
	fl.StringVar(&f.backend, "backend", "", "")
	_ = fl.MarkHidden("backend") // "fake:DURATION": runs sleep and succeed, touching no target (queue benchmarks and fault tests)
	return c
}

// check refuses flag values that cannot work, naming the flag.
func (f *serverFlags) check() error {
	if (f.tlsCert == "") != (f.tlsKey == "") {
		return usagef("--tls-cert and --tls-key go together")
	}
	if f.slots < 1 || f.batch < 1 || f.maxRunning < 0 || f.rate < 0 || f.burst < 0 {
		return usagef("--slots and --claim-batch must be at least 1, --max-running, --rate and --burst not negative")
	}
	if f.maxTargets < 0 || f.maxJobsPerMinute < 0 {
		return usagef("--max-targets-per-job and --max-jobs-per-minute must not be negative (0: no limit)")
	}
	if f.capacityTargetAge < time.Second {
		return usagef("--capacity-target-age must be at least 1s, got %s", f.capacityTargetAge)
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
	if f.concurrency < 1 {
		return usagef("--concurrency must be at least 1, got %d", f.concurrency)
	}
	return nil
}

// fakeBackend reads the hidden --backend fake:DURATION.
func (f *serverFlags) fakeBackend() (*time.Duration, error) {
	if f.backend == "" {
		return nil, nil
	}
	d, ok := strings.CutPrefix(f.backend, "fake:")
	v, err := time.ParseDuration(d)
	if !ok || err != nil || v < 0 {
		return nil, usagef("--backend %q: use fake:DURATION (for example fake:0 or fake:1ms)", f.backend)
	}
	return &v, nil
}
