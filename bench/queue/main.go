// Command queue benchmarks muster server's durable queue: enqueue-to-
// completion throughput of no-op node-runs, and enqueue-to-start latency of
// single runs on an idle server.
//
// One invocation measures one configuration, -repeat times: each time it
// starts -servers muster server processes (muster server --backend fake:0,
// so every node-run succeeds at once without touching a target) on
// 127.0.0.1 random ports, on a fresh store (SQLite in a new data
// directory, or a new database in the PostgreSQL cluster given by
// -database), then:
//
//  1. Throughput: -jobs jobs, each on all -nodes nodes of a plain inventory,
//     submitted as fast as possible by -submitters goroutines (round robin
//     over the servers). The time runs from the first submit's send to the
//     finished_at of the last run (server clock, same machine), checked by
//     polling GET /api/v1/stats until every run is final. Every run must
//     have succeeded, once.
//  2. Latency (after the last repetition only), on the now idle server(s):
//     -lat-samples single-node jobs, one at a time with a random pause. Enqueue-to-start is the
//     run's started_at minus the time the submit request was sent. The
//     server's own view (GET /api/v1/stats "wait", ready to started, over
//     the last 1000 finished runs) is recorded too.
//
// It writes one JSON object (see Result) to -out; the repetition with the
// median runs/s stands for the configuration. `queue merge OUT IN...` joins
// the results of one configuration measured in several invocations, and
// `queue report -meta META RESULT...` turns results into the markdown of
// bench/results/queue.md. bench/queue/run.sh drives all three.
package main

import (
	"cmp"
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" driver: fresh databases, pg_stat_statements

	"github.com/muster-run/muster/internal/api"
)

// options are the command-line flags of a measurement.
type options struct {
	muster, name, database, pgSync, backend, workdir, out string
	servers, jobs, nodes, submitters, slots, batch        int
	latSamples                                            int
	latPauseMin, latPauseMax, timeout                     time.Duration
	pgPID                                                 int
	pgStat, keep, skipLatency                             bool
	repeat                                                int
	targetRPS, targetP99MS                                float64
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "merge" {
		if err := merge(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "queue merge:", err)
			os.Exit(1)
		}
		return
	}
	if len(os.Args) > 1 && os.Args[1] == "report" {
		if err := report(os.Args[2:], os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "queue report:", err)
			os.Exit(1)
		}
		return
	}
	var o options
	fl := flag.NewFlagSet("queue", flag.ExitOnError)
	fl.StringVar(&o.muster, "muster", "bin/muster", "muster binary")
	fl.StringVar(&o.name, "name", "", "configuration label for the report (default: store/servers)")
	fl.StringVar(&o.database, "database", "", "PostgreSQL URL of a database to connect to as admin (a fresh database is created in its cluster); empty: SQLite")
	fl.StringVar(&o.pgSync, "pg-synchronous-commit", "", "set synchronous_commit on the fresh database (e.g. off); empty: the cluster's setting")
	fl.IntVar(&o.servers, "servers", 1, "muster servers sharing the store (more than 1 needs PostgreSQL)")
	fl.IntVar(&o.jobs, "jobs", 20, "throughput: jobs")
	fl.IntVar(&o.nodes, "nodes", 1000, "throughput: nodes per job (the inventory size)")
	fl.IntVar(&o.submitters, "submitters", 4, "throughput: client goroutines submitting")
	fl.IntVar(&o.slots, "slots", 100, "muster server --slots")
	fl.IntVar(&o.batch, "claim-batch", 100, "muster server --claim-batch")
	fl.StringVar(&o.backend, "backend", "fake:0", "muster server --backend")
	fl.IntVar(&o.latSamples, "lat-samples", 1000, "latency: single-node jobs, one at a time")
	fl.DurationVar(&o.latPauseMin, "lat-pause-min", 5*time.Millisecond, "latency: shortest random pause before a sample")
	fl.DurationVar(&o.latPauseMax, "lat-pause-max", 30*time.Millisecond, "latency: longest random pause before a sample")
	fl.BoolVar(&o.skipLatency, "skip-latency", false, "measure throughput only")
	fl.IntVar(&o.repeat, "repeat", 1, "throughput repetitions, each on a fresh store and servers; the median counts, latency is measured after the last")
	fl.DurationVar(&o.timeout, "timeout", 10*time.Minute, "give up when the throughput phase has not drained after this long")
	fl.IntVar(&o.pgPID, "pg-pid", 0, "postmaster pid: report PostgreSQL's CPU (its own and its backends')")
	fl.BoolVar(&o.pgStat, "pg-stat", false, "read pg_stat_statements, pg_stat_wal and pg_stat_database for the throughput phase (needs the extension preloaded)")
	fl.StringVar(&o.workdir, "workdir", "", "directory for data dirs, inventory and server logs (default: a new temp dir, removed unless -keep)")
	fl.BoolVar(&o.keep, "keep", false, "keep the work directory")
	fl.StringVar(&o.out, "out", "", "write the JSON result here (default stdout)")
	fl.Float64Var(&o.targetRPS, "target-rps", 0, "throughput target in runs/s for the report (0: none)")
	fl.Float64Var(&o.targetP99MS, "target-p99-ms", 0, "idle enqueue-to-start p99 target in ms for the report (0: none)")
	_ = fl.Parse(os.Args[1:])
	if fl.NArg() != 0 {
		fmt.Fprintln(os.Stderr, "queue: unexpected arguments:", fl.Args())
		os.Exit(2)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	res, err := measure(ctx, o)
	stop()
	if err != nil {
		res.Error = err.Error()
		logf("%s: FAILED: %v", res.Name, err)
	}
	b, _ := json.MarshalIndent(res, "", " ")
	b = append(b, '\n')
	if o.out == "" {
		_, _ = os.Stdout.Write(b)
	} else if werr := os.WriteFile(o.out, b, 0o644); werr != nil {
		fmt.Fprintln(os.Stderr, "queue:", werr)
		os.Exit(1)
	}
	if err != nil {
		os.Exit(1)
	}
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s queue: %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

// Result is one configuration's measurement, as written to -out.
type Result struct {
	Name        string   `json:"name"`
	Store       string   `json:"store"` // "sqlite" or "postgres"
	Servers     int      `json:"servers"`
	PGSync      string   `json:"pg_synchronous_commit,omitempty"`
	Slots       int      `json:"slots"`
	ClaimBatch  int      `json:"claim_batch"`
	Backend     string   `json:"backend"`
	Jobs        int      `json:"jobs"`
	Nodes       int      `json:"nodes"`
	Submitters  int      `json:"submitters"`
	TargetRPS   float64  `json:"target_rps,omitempty"`
	TargetP99MS float64  `json:"target_p99_ms,omitempty"`
	Commands    []string `json:"commands"`

	// Throughput is the repetition with the median runs/s; Repeats holds
	// every repetition in order.
	Throughput *Throughput   `json:"throughput,omitempty"`
	Repeats    []*Throughput `json:"repeats,omitempty"`
	Latency    *Latency      `json:"latency,omitempty"`

	// LogWarnings counts WARN and ERROR lines in the server logs; LogSample
	// holds the first few.
	LogWarnings int      `json:"log_warnings"`
	LogSample   []string `json:"log_sample,omitempty"`
	Error       string   `json:"error,omitempty"`
}

// Throughput is the throughput phase.
type Throughput struct {
	Runs int `json:"runs"`
	// Seconds runs from the first submit's send to the last run's
	// finished_at; RunsPerSec is Runs/Seconds.
	Seconds    float64 `json:"seconds"`
	RunsPerSec float64 `json:"runs_per_sec"`
	// ObservedSeconds is when the stats poll (every 100 ms) first saw every
	// run final.
	ObservedSeconds float64 `json:"observed_seconds"`
	// SubmitSeconds is when the last submit was answered.
	SubmitSeconds float64 `json:"submit_seconds"`
	// SteadyRunsPerSec is the completion rate between the 10th and the
	// 90th percentile of finished_at (no ramp-up, no tail).
	SteadyRunsPerSec float64 `json:"steady_runs_per_sec"`
	// Stats* are GET /api/v1/stats right after the drain: runs finished in
	// the last minute and the server's per-second figure (that count / 60).
	StatsFinished1m   int     `json:"stats_finished_1m"`
	StatsThroughput1m float64 `json:"stats_throughput_1m_per_sec"`
	// StatsWait is the server's ready-to-started percentiles then (queueing
	// under load).
	StatsWait api.Percentiles `json:"stats_wait"`
	// Succeeded, Retried (attempt > 1) and NotSucceeded over every run.
	Succeeded    int `json:"succeeded"`
	Retried      int `json:"retried"`
	NotSucceeded int `json:"not_succeeded"`
	CPU          CPU `json:"cpu"`
	// PG holds PostgreSQL's own accounting of the phase, with -pg-stat.
	PG *PGStats `json:"pg,omitempty"`
}

// CPU is CPU time used during a phase, in seconds.
type CPU struct {
	Wall     float64   `json:"wall_s"`
	Servers  []float64 `json:"servers_s"`
	Postgres float64   `json:"postgres_s"`
	Driver   float64   `json:"driver_s"`
	// Busy is the whole machine's busy time; Other is Busy minus the
	// servers, PostgreSQL and the driver: unrelated processes (noise),
	// and interrupt time. IRQ (irq + softirq, for loopback traffic mostly
	// ours) and Steal (taken by the hypervisor) are parts of Other.
	Busy  float64 `json:"machine_busy_s"`
	Other float64 `json:"other_s"`
	IRQ   float64 `json:"irq_s"`
	Steal float64 `json:"steal_s"`
	Cores int     `json:"cores"`
}

// PGStats is PostgreSQL's view of a phase.
type PGStats struct {
	Commits    int64       `json:"xact_commit"`
	WALRecords int64       `json:"wal_records"`
	WALBytes   int64       `json:"wal_bytes"`
	WALSyncs   int64       `json:"wal_sync"`
	WALWrites  int64       `json:"wal_write"`
	ExecMS     float64     `json:"total_exec_ms"`
	Top        []Statement `json:"top_statements"`
}

// Statement is one pg_stat_statements row.
type Statement struct {
	Calls   int64   `json:"calls"`
	TotalMS float64 `json:"total_ms"`
	MeanMS  float64 `json:"mean_ms"`
	Rows    int64   `json:"rows"`
	Query   string  `json:"query"`
}

// Latency is the idle latency phase; durations in milliseconds.
type Latency struct {
	Samples int `json:"samples"`
	// EnqueueToStart: started_at minus the submit request's send time.
	EnqueueToStart Pct `json:"enqueue_to_start_ms"`
	// ServerWait: started_at minus run_at (the server's "wait", from the
	// samples' own runs).
	ServerWait Pct `json:"server_wait_ms"`
	// SubmitAck: the submit request's round trip (the job is durable when
	// it is answered).
	SubmitAck Pct `json:"submit_ack_ms"`
	// StatsWait: GET /api/v1/stats "wait" after the phase (last 1000
	// finished runs; all of them samples when Samples >= 1000).
	StatsWait api.Percentiles `json:"stats_wait"`
}

// Pct are percentiles in milliseconds.
type Pct struct {
	N   int     `json:"n"`
	P50 float64 `json:"p50"`
	P95 float64 `json:"p95"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
}

func pct(ds []time.Duration) Pct {
	if len(ds) == 0 {
		return Pct{}
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	at := func(q float64) float64 { // nearest rank
		i := int(q*float64(len(s))+0.999999) - 1
		return ms(s[min(max(i, 0), len(s)-1)])
	}
	return Pct{N: len(s), P50: at(0.50), P95: at(0.95), P99: at(0.99), Max: ms(s[len(s)-1])}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// measure runs one configuration. The result is filled in as far as it
// got, also on error.
func measure(ctx context.Context, o options) (res Result, err error) {
	store := "sqlite"
	if o.database != "" {
		store = "postgres"
	}
	if o.name == "" {
		o.name = fmt.Sprintf("%s/%d", store, o.servers)
	}
	res = Result{Name: o.name, Store: store, Servers: o.servers, PGSync: o.pgSync, Slots: o.slots, ClaimBatch: o.batch,
		Backend: o.backend, Jobs: o.jobs, Nodes: o.nodes, Submitters: o.submitters,
		TargetRPS: o.targetRPS, TargetP99MS: o.targetP99MS}
	switch {
	case o.servers < 1 || o.jobs < 1 || o.nodes < 1 || o.submitters < 1 || o.repeat < 1 || o.latSamples < 0:
		return res, errors.New("-servers, -jobs, -nodes, -submitters and -repeat must be at least 1")
	case o.servers > 1 && store != "postgres":
		return res, errors.New("several servers need a shared PostgreSQL database (-database)")
	case o.pgSync != "" && store != "postgres":
		return res, errors.New("-pg-synchronous-commit needs -database")
	case o.latPauseMax < o.latPauseMin:
		return res, errors.New("-lat-pause-max is shorter than -lat-pause-min")
	}
	bin, err := filepath.Abs(o.muster)
	if err != nil {
		return res, err
	}

	work := o.workdir
	if work == "" {
		if work, err = os.MkdirTemp("", "muster-queue-bench."); err != nil {
			return res, err
		}
		if !o.keep {
			defer os.RemoveAll(work)
		}
	} else if err := os.MkdirAll(work, 0o755); err != nil {
		return res, err
	}
	project := filepath.Join(work, "project")
	names, err := writeInventory(project, o.nodes)
	if err != nil {
		return res, err
	}
	// One secret key for every server of the configuration, as an operator
	// of several servers would give them.
	keyFile := filepath.Join(work, "secret.key")
	var key [32]byte
	if _, err := crand.Read(key[:]); err != nil {
		return res, err
	}
	if err := os.WriteFile(keyFile, []byte(hex.EncodeToString(key[:])+"\n"), 0o600); err != nil {
		return res, err
	}
	var pg *pgAdmin
	if store == "postgres" {
		if pg, err = newPGAdmin(ctx, o.database); err != nil {
			return res, err
		}
		defer pg.close()
	}
	s := &session{o: o, bin: bin, work: work, project: project, keyFile: keyFile, nodes: names, pg: pg, res: &res}
	for rep := 1; rep <= o.repeat; rep++ {
		t, err := s.run(ctx, rep)
		if t != nil {
			res.Repeats = append(res.Repeats, t)
		}
		if err != nil {
			return res, err
		}
	}
	res.Throughput = median(res.Repeats)
	return res, nil
}

// median returns the repetition with the median runs/s (the lower one of
// an even count): it stands for the configuration.
func median(reps []*Throughput) *Throughput {
	if len(reps) == 0 {
		return nil
	}
	byRate := slices.Clone(reps)
	slices.SortFunc(byRate, func(a, b *Throughput) int { return cmp.Compare(a.RunsPerSec, b.RunsPerSec) })
	return byRate[(len(byRate)-1)/2]
}

// merge implements `queue merge OUT IN...`: it joins results of one
// configuration measured in several invocations (run.sh interleaves the
// repetitions of every configuration, so that a burst of noise on the
// machine does not hit one configuration only) into one result.
func merge(args []string) error {
	if len(args) < 2 {
		return errors.New("usage: queue merge OUT IN [IN]")
	}
	var out Result
	for i, p := range args[1:] {
		var r Result
		if err := readJSON(p, &r); err != nil {
			return err
		}
		if i == 0 {
			out = r
			out.Repeats, out.Latency, out.LogWarnings, out.LogSample, out.Error = nil, nil, 0, nil, ""
		}
		out.Repeats = append(out.Repeats, r.Repeats...)
		if r.Latency != nil {
			out.Latency = r.Latency
		}
		out.LogWarnings += r.LogWarnings
		out.LogSample = append(out.LogSample, r.LogSample...)
		if r.Error != "" && out.Error == "" {
			out.Error = r.Error
		}
	}
	if len(out.LogSample) > 5 {
		out.LogSample = out.LogSample[:5]
	}
	out.Throughput = median(out.Repeats)
	b, err := json.MarshalIndent(out, "", " ")
	if err != nil {
		return err
	}
	return os.WriteFile(args[0], append(b, '\n'), 0o644)
}

// session is one fresh store with its servers.
type session struct {
	o                           options
	bin, work, project, keyFile string
	nodes                       []string
	pg                          *pgAdmin
	res                         *Result
}

// run measures one repetition on a fresh store: throughput, and on the
// last repetition latency.
func (s *session) run(ctx context.Context, rep int) (t *Throughput, err error) {
	o := s.o
	tag := fmt.Sprintf("%s #%d", o.name, rep)
	// The store: a fresh PostgreSQL database, or a fresh SQLite data dir.
	dbURL := ""
	if s.pg != nil {
		if dbURL, err = s.pg.freshDatabase(ctx, o.pgSync); err != nil {
			return nil, err
		}
		defer s.pg.dropDatabase() // after the servers have stopped (defers run last first)
		logf("%s: fresh database %s", tag, s.pg.dbName)
	}
	data := filepath.Join(s.work, fmt.Sprintf("data%d", rep))
	args := []string{"server", "--listen", "127.0.0.1:0", "--project", s.project, "--secret-key-file", s.keyFile,
		"--backend", o.backend, "--slots", strconv.Itoa(o.slots), "--claim-batch", strconv.Itoa(o.batch),
		// The benchmark is one client submitting as fast as it can: the
		// per-token rate limit would measure itself.
		"--max-jobs-per-minute", "0"}
	if dbURL != "" {
		args = append(args, "--database", dbURL)
	}

	var servers []*server
	defer func() {
		for _, sv := range servers {
			if serr := sv.stop(); serr != nil && err == nil {
				err = serr
			}
		}
		for _, sv := range servers {
			n, sample := sv.warnings()
			s.res.LogWarnings += n
			s.res.LogSample = append(s.res.LogSample, sample...)
		}
		if len(s.res.LogSample) > 5 {
			s.res.LogSample = s.res.LogSample[:5]
		}
	}()
	for i := range o.servers {
		// Servers on one PostgreSQL database share a data dir: the first
		// writes the admin token, the others find it in the database.
		argv := append(slices.Clone(args), "--data-dir", data)
		sv, err := startServer(ctx, s.bin, argv, filepath.Join(s.work, fmt.Sprintf("server%d-%d.log", rep, i+1)))
		if err != nil {
			return nil, err
		}
		servers = append(servers, sv)
		if rep == 1 {
			s.res.Commands = append(s.res.Commands, "muster "+strings.Join(redactArgs(argv, s.work, dbURL, s.pg), " "))
		}
		logf("%s: server %d at %s (pid %d)", tag, i+1, sv.url, sv.cmd.Process.Pid)
	}
	tok, err := os.ReadFile(filepath.Join(data, "admin.token"))
	if err != nil {
		return nil, err
	}
	tr := &http.Transport{MaxIdleConns: 256, MaxIdleConnsPerHost: 64, IdleConnTimeout: 90 * time.Second}
	defer tr.CloseIdleConnections()
	var clients []*api.Client
	for _, sv := range servers {
		c, err := api.NewClient(sv.url, strings.TrimSpace(string(tok)), api.WithTransport(tr))
		if err != nil {
			return nil, err
		}
		if err := c.Health(ctx); err != nil {
			return nil, err
		}
		clients = append(clients, c)
	}

	if t, err = throughput(ctx, o, tag, clients, servers, s.pg); err != nil {
		return t, err
	}
	if rep < o.repeat || o.skipLatency || o.latSamples == 0 {
		return t, nil
	}
	s.res.Latency, err = latency(ctx, o, tag, clients, s.nodes)
	return t, err
}

// writeInventory writes dir/inventory.yaml: one group "nodes" of n names.
func writeInventory(dir string, n int) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	var b strings.Builder
	b.WriteString("groups:\n  - name: nodes\n    targets:\n")
	names := make([]string, n)
	for i := range n {
		names[i] = fmt.Sprintf("n%05d", i+1)
		fmt.Fprintf(&b, "      - %s\n", names[i])
	}
	return names, os.WriteFile(filepath.Join(dir, "inventory.yaml"), []byte(b.String()), 0o644)
}

// redactArgs shortens a server command line for the report: temp paths
// become placeholders and the database URL loses its host details.
func redactArgs(argv []string, work, dbURL string, pg *pgAdmin) []string {
	out := make([]string, len(argv))
	for i, a := range argv {
		a = strings.ReplaceAll(a, work, "$WORK")
		if dbURL != "" && a == dbURL {
			a = "postgres://postgres@127.0.0.1:$PGPORT/" + pg.dbName + "?sslmode=disable"
		}
		out[i] = a
	}
	return out
}

// ---------------------------------------------------------------- throughput

// ---------------------------------------------------------------- servers

var apiLine = regexp.MustCompile(`msg="muster server started".* api=(\S+)`)
