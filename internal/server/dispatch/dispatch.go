// Package dispatch is the server loop: it claims ready runs from the
// queue (muster.WorkQueue), runs them through an Executor, and records how
// they ended. It is where the queue's promises are kept at run time:
//
//   - Admission: a run starts only while capacity remains (local slots,
//     a rate limit and a backend health probe, see internal/capacity) and
//     the global MaxRunning cap, which the queue enforces across servers.
//   - Leases: every claimed run is leased to this server for LeaseTTL. A
//     heartbeat renews the leases; a run that is missing from the renewal
//     was rescued by another server, so it is stopped here and not reported.
//     When the database stays unreachable until a lease runs out, the run
//     is stopped too: the old holder must never keep running a run that
//     someone else may now start.
//   - Rescue: every server also requeues runs whose lease expired (their
//     server died), so nothing is lost: given a muster.Rescuer, the
//     dispatcher runs it every RescueInterval.
//   - Cancellation: Jobs.CancelJob, on any server, flags the job's running
//     runs in the database. After every heartbeat, and whenever the queue's
//     Wake fires (at most every 200ms), the dispatcher asks the store which
//     of its runs are flagged and cancels their contexts, so the executor
//     stops the remote process. Unlike a lost lease, such an attempt is
//     reported: as a muster/cancelled failure, which the store records as
//     cancelled (or as whatever it was, had it succeeded first).
//   - Throughput: completions are batched into one WorkQueue.CompleteRuns
//     transaction (group commit), and each batch frees nodes and slots
//     that the loop claims again at once.
//   - Stopping: Shutdown stops claiming, lets running runs finish within a
//     grace period, then cancels the rest and releases their leases, so
//     another server can start them without spending a retry. Cancelling
//     Run's context is the abrupt stop: runs are cancelled and nothing more
//     is written, as if the process died; their leases expire and a
//     rescuer requeues them.
//
// The dispatcher talks only to the worker side of the queue
// (muster.WorkQueue, and muster.Rescuer when it rescues) and to the
// Executor interface below, so the same loop can run over the database or
// over a remote queue. cmd/muster supplies the real executor (the SSH
// engine); tests use fakes.
package dispatch

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/muster-run/muster"
	"github.com/muster-run/muster/internal/capacity"
)

// Executor runs one claimed run on its node.
//
// Execute must honour ctx: when it is cancelled (the run's timeout, the
// cancellation of its job, a rescue by another server, the end of a
// shutdown's grace period) it must
// stop the remote work, for SSH by closing the channel so the process gets
// a signal, and return promptly. The dispatcher waits for Execute to return
// before it stops. Execute must be safe for concurrent use; it is called at
// most once at a time per node.
//
// What the run's action prints should go to out as well as into the
// Outcome's Result: out feeds watchers live (see Output).
type Executor interface {
	Execute(ctx context.Context, r muster.Run, out Output) Outcome
}

// ExecutorFunc adapts a function to Executor.
type ExecutorFunc func(ctx context.Context, r muster.Run, out Output) Outcome

// Execute calls f.
func (f ExecutorFunc) Execute(ctx context.Context, r muster.Run, out Output) Outcome {
	return f(ctx, r, out)
}

// Outcome is how an attempt ended, as the Executor reports it.
type Outcome struct {
	OK       bool
	ExitCode int
	// Error says why a failed attempt failed, as "<kind>: <message>"
	// with a Bolt-style error kind, e.g. "muster/timeout-error: run 7 on
	// web1 timed out after 30s". Failure builds it from an error.
	Error string
	// Result is the attempt's JSON result (the Bolt-shaped result object).
	// It is stored as given; invalid JSON is stored as a JSON string.
	Result json.RawMessage
}

// Failure returns a failed Outcome for err: Error carries its kind (or
// muster/exception-error when it has none) and message, and Result is
// {"_error": {...}}, the shape of a failed Bolt result value.
func Failure(err error) Outcome {
	e := muster.AsError(err, muster.KindInternal)
	if e.Details == nil {
		e.Details = map[string]any{}
	}
	res, _ := json.Marshal(map[string]any{"_error": e})
	return Outcome{ExitCode: -1, Error: e.Kind + ": " + e.Msg, Result: res}
}

// Hooks are optional callbacks for metrics (the HTTP layer feeds its
// Prometheus histograms from them, so this package needs no metrics
// library). They are called from many goroutines at once and must be
// quick and safe for concurrent use.
type Hooks struct {
	// OnStart is called as a run starts executing; wait is how long it
	// waited between becoming ready and being claimed (Run.Wait).
	OnStart func(r muster.Run, wait time.Duration)
	// OnFinish is called when an attempt ends and its outcome is to be
	// recorded. Attempts stopped because their lease was lost or released
	// are not recorded and not reported.
	OnFinish func(r muster.Run, runTime time.Duration, o Outcome)
	// OnAdmission is called whenever admission opens or closes, or closes
	// for another reason. Under load it closes and reopens often (free
	// slots and rate tokens run out and come back).
	OnAdmission func(open bool, why string)
	// OnStored is called, with the ids of the jobs concerned, after
	// changes to their runs are in the store: runs claimed, attempts
	// completed, live output appended. Watchers (the API's event stream)
	// then read the store at once instead of polling it.
	OnStored func(jobs []int64)
	// OnResultChange is called after a completion changed the node's
	// fingerprint of a change-driven job (muster.CompleteResult.Change):
	// the change, its on-change job and the runs it bumped are stored.
	OnResultChange func(r muster.Run, c muster.ResultChange)
}

// stored reports changes of runs to Hooks.OnStored.
func (d *Dispatcher) stored(runs ...muster.Run) {
	if d.cfg.Hooks.OnStored == nil || len(runs) == 0 {
		return
	}
	jobs := make([]int64, 0, len(runs))
	seen := map[int64]bool{}
	for _, r := range runs {
		if !seen[r.JobID] {
			seen[r.JobID] = true
			jobs = append(jobs, r.JobID)
		}
	}
	d.cfg.Hooks.OnStored(jobs)
}

// Config configures a Dispatcher. Queue and Executor are required; every
// other field has a default.
type Config struct {
	// Queue is where runs are claimed, renewed, reported and handed back.
	Queue muster.WorkQueue
	// Rescuer, if set, takes back the runs whose lease expired (their
	// server died) every RescueInterval. A server with the database sets
	// it, to the same store as Queue; a worker without the database (an
	// agent on a remote queue) leaves it nil, and the servers rescue its
	// runs. Nil means this dispatcher rescues nothing.
	Rescuer  muster.Rescuer
	Executor Executor

	// Server is this dispatcher's lease-owner name. It must be unique per
	// process, or two servers would renew each other's leases. Default:
	// ServerName().
	Server string
	// Slots caps the runs this dispatcher executes at once. Default 100.
	Slots int
	// BatchSize caps the runs claimed in one transaction. Default 100.
	BatchSize int
	// MaxRunning caps running runs across every server sharing the
	// database; 0 means no global cap.
	MaxRunning int
	// Rate caps run starts per second on this dispatcher, with bursts of
	// up to Burst; 0 means no rate limit (see capacity.Config).
	Rate  float64
	Burst int

	// LeaseTTL is how long a claim or heartbeat holds a run. Default 30s.
	LeaseTTL time.Duration
	// HeartbeatInterval is how often leases are renewed; it must be
	// shorter than LeaseTTL. Default LeaseTTL/3.
	HeartbeatInterval time.Duration
	// RescueInterval is how often expired leases are rescued (with
	// Rescuer). Default LeaseTTL/2.
	RescueInterval time.Duration
	// PollInterval is how often the queue is polled for ready work when
	// nothing else wakes the loop. WorkQueue.Wake makes submitted work start
	// within milliseconds; the poll is the fallback (and picks up retries
	// and scheduled runs as they fall due). Default 1s.
	PollInterval time.Duration

	// HealthURL, if set, is probed with GET every HealthInterval (default
	// 5s), each probe bounded by HealthTimeout (default the interval, at
	// most 5s). A 2xx answer is healthy; its body may report a load, as
	// JSON {"load": 1.5} or as a plain number, which closes admission
	// while it is above LoadThreshold (0: load not checked).
	HealthURL      string
	LoadThreshold  float64
	HealthInterval time.Duration
	HealthTimeout  time.Duration
	// HTTPClient makes the probes. Default: a private client whose idle
	// connections are closed when Run returns.
	HTTPClient *http.Client

	// CompleteBatch caps the completions written in one transaction
	// (default 500); CompleteDelay is how long a completion may wait for
	// others to join its batch (default 2ms).
	CompleteBatch int
	CompleteDelay time.Duration

	// OutputInterval is how often the live output of running runs is
	// appended to the store for watchers. Default 250ms.
	OutputInterval time.Duration

	// Logger receives the dispatcher's log. Default slog.Default().
	Logger *slog.Logger
	Hooks  Hooks
}

// ServerName returns a lease-owner name unique to this process:
// hostname, pid and a random suffix.
func ServerName() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "muster"
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b[:]))
}

// withDefaults validates c and fills in its defaults.
func (c Config) withDefaults() (Config, error) {
	if c.Queue == nil || c.Executor == nil {
		return c, errors.New("dispatch: Config needs a Queue and an Executor")
	}
	if c.Slots < 0 || c.BatchSize < 0 || c.MaxRunning < 0 || c.Rate < 0 || c.LeaseTTL < 0 || c.LoadThreshold < 0 {
		return c, errors.New("dispatch: negative limit in Config")
	}
	def := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	if c.Server == "" {
		c.Server = ServerName()
	}
	if c.Slots == 0 {
		c.Slots = 100
	}
	if c.BatchSize == 0 {
		c.BatchSize = 100
	}
	def(&c.LeaseTTL, 30*time.Second)
	def(&c.HeartbeatInterval, c.LeaseTTL/3)
	def(&c.RescueInterval, c.LeaseTTL/2)
	if c.HeartbeatInterval >= c.LeaseTTL {
		return c, errors.New("dispatch: HeartbeatInterval must be shorter than LeaseTTL, or leases expire between beats")
	}
	def(&c.PollInterval, time.Second)
	def(&c.HealthInterval, 5*time.Second)
	def(&c.HealthTimeout, min(c.HealthInterval, 5*time.Second))
	def(&c.CompleteDelay, 2*time.Millisecond)
	def(&c.OutputInterval, 250*time.Millisecond)
	if c.CompleteBatch <= 0 {
		c.CompleteBatch = 500
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c, nil
}

// Dispatcher is the server loop. Build it with New, start it with Run and
// stop it with Shutdown (or by cancelling Run's context).
type Dispatcher struct {
	cfg   Config
	queue muster.WorkQueue
	log   *slog.Logger
	cap   *capacity.Controller
	out   *outputs // live output of executing runs

	kick      chan struct{} // buffer 1: capacity or nodes were freed, claim again
	flushSig  chan struct{} // buffer 1: completions are waiting
	cancelSig chan struct{} // buffer 1: the store woke us; look for cancel requests

	// claimMu orders claims against heartbeats: a heartbeat must never
	// see a run this server has claimed but not yet registered in tasks,
	// or it would take the run for an orphan and release it.
	claimMu sync.Mutex

	mu      sync.Mutex
	tasks   map[int64]*task  // claimed runs not yet completed, by id
	byNode  map[string]*task // executing runs, by node
	pending []pendingDone    // completions waiting for the completer

	// The admission state last reported to OnAdmission (loop only).
	admitKnown, admitOpen bool
	admitWhy              string

	workers sync.WaitGroup // one per executing run

	// Lifecycle.
	life     sync.Mutex
	started  bool
	stopping chan struct{} // closed by Shutdown
	grace    context.Context
	drain    chan struct{} // closed when the completer should flush everything and exit
	final    context.Context
	// completerDone is closed when the completer has exited.
	completerDone chan struct{}
	done          chan struct{} // closed when Run returns
	result        error         // Run's graceful-stop result, read by Shutdown after done
}

// task is one claimed run while this dispatcher holds it.
type task struct {
	run    muster.Run
	ctx    context.Context // cancelled, with a cause, to stop the run
	cancel context.CancelCauseFunc
	// leaseUntil is when the lease runs out as far as this dispatcher
	// knows: the start of the claim or last successful heartbeat plus TTL.
	leaseUntil time.Time
	// lost is set when the run must not be reported: it was rescued by
	// another server, its lease ran out, or shutdown released it.
	lost bool
	// stopping is set when the run was cancelled because its job was: it is
	// reported, as cancelled.
	stopping bool
	// finished is set when execution ended and the completion is queued.
	finished bool
	// exited is closed when the executing goroutine returns; after, if
	// set, is the exited of a lost run on the same node, which must end
	// before this one starts.
	exited, after chan struct{}
}

// pendingDone is a completion waiting to be written.
type pendingDone struct {
	t  *task
	p  muster.CompleteParams
	at time.Time // when it was queued
}

// New returns a Dispatcher for cfg.
func New(cfg Config) (*Dispatcher, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	log := cfg.Logger.With("server", cfg.Server)
	return &Dispatcher{
		cfg:   cfg,
		queue: cfg.Queue,
		log:   log,
		cap: capacity.New(capacity.Config{MaxInFlight: cfg.Slots, Rate: cfg.Rate, Burst: cfg.Burst,
			Health: cfg.HealthURL, LoadThreshold: cfg.LoadThreshold}),
		kick:      make(chan struct{}, 1),
		flushSig:  make(chan struct{}, 1),
		cancelSig: make(chan struct{}, 1),
		tasks:     map[int64]*task{},
		byNode:    map[string]*task{},
		out:       newOutputs(cfg.Queue, log, cfg.Hooks.OnStored),
		stopping:  make(chan struct{}),
		drain:     make(chan struct{}),
		done:      make(chan struct{}),

		completerDone: make(chan struct{}),
	}, nil
}

// Server returns the lease-owner name.
func (d *Dispatcher) Server() string { return d.cfg.Server }

// InFlight returns how many runs are executing now.
func (d *Dispatcher) InFlight() int { return d.cap.InFlight() }

// Admission returns the current admission decision (for a status page).
func (d *Dispatcher) Admission() capacity.Decision { return d.cap.Admit(time.Now()) }

// signal does a non-blocking send on a buffer-1 channel: signals coalesce.
func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// backoff is a capped exponential delay with jitter for retrying the store.
type backoff struct {
	min, max, cur time.Duration
}

func (b *backoff) next() time.Duration {
	b.cur = min(max(b.cur*2, b.min), b.max)
	return b.cur/2 + mrand.N(b.cur/2+1)
}

func (b *backoff) reset() { b.cur = 0 }

// sleep waits for d or ctx; it reports false if ctx ended first.
func sleep(ctx context.Context, d time.Duration, stop <-chan struct{}) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	case <-stop:
		return false
	}
}
