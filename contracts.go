package muster

// contracts.go: the Store's interfaces, split by who uses them. The
// vocabulary they speak (jobs, runs, their states and parameters) is in
// store.go.

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"
)

// The store splits by who uses it (see docs/architecture.md, "The contracts"):
//
//   - WorkQueue is the worker side: claim node-runs, hold them under a
//     lease, report how they ended, give them back. The dispatcher uses it;
//     so will an agent that runs its own node's runs through the HTTP API
//     instead of the database.
//   - Rescuer is maintenance over the whole database: it takes back the
//     runs of servers that died. Only a process with the database runs it,
//     so a remote worker implements WorkQueue without it.
//   - Jobs is the API side: submit, inspect, cancel and bump jobs.
//   - AuthStore (auth.go) keeps tokens and the audit trail.
//   - Nodes (nodes.go) keeps pull mode's nodes and enrollment tokens, and
//     is the agents' side of the queue: a node's agent claims its own
//     pull runs, then reports them through WorkQueue.CompleteRuns.
//
// Store is their union, which the SQL stores implement.

// WorkQueue is the worker side of the queue: everything a worker needs to
// run node-runs under leases. A worker is named by the Server of its
// claims, which must be unique per process (it owns the leases).
type WorkQueue interface {
	// ClaimRuns moves ready runs to running under a lease, best first
	// (bumped, then priority, then oldest RunAt), at most one per node and
	// never more than MaxRunning in total (pull runs included). It never
	// claims a pull run (JobPull): those are their agents'
	// (Nodes.ClaimNodeRun).
	ClaimRuns(ctx context.Context, p ClaimParams) ([]Run, error)
	// Heartbeat extends the leases the server still holds (including expired
	// ones not yet rescued) and returns those runs' ids; a running run
	// missing from the list was rescued, and its holder should stop it.
	Heartbeat(ctx context.Context, p HeartbeatParams) ([]int64, error)
	// CompleteRuns records many attempts' ends in one transaction (a busy
	// server batches them): success, final failure, or a retry after
	// backoff. Continuous and recurring jobs get the node's next run in the
	// same transaction. A failed attempt of a run whose cancel was
	// requested (Jobs.CancelJob) ends the run cancelled instead, keeping
	// the reported error, with no retry and no repeat; a succeeded one
	// stays succeeded. Repeating a completion is a no-op that returns the
	// run; completing a run this server and attempt no longer holds is
	// ErrLeaseLost. Each result carries its own error (ErrLeaseLost,
	// ErrInvalid, ErrNotFound); the returned error is for the batch as a
	// whole. CompleteRun records one completion.
	CompleteRuns(ctx context.Context, ps []CompleteParams) ([]CompleteResult, error)
	// ReleaseRuns gives back the leases a stopping server still holds on
	// the given runs (all of them when ids is empty): they go back to
	// pending at their old place in the queue, without spending a retry,
	// for any server to claim; a run whose cancel was requested ends
	// cancelled instead. It returns the released runs' ids.
	ReleaseRuns(ctx context.Context, server string, ids []int64) ([]int64, error)
	// CancelRequested returns the ids, in order, of the running runs that
	// server holds whose cancel was requested (Jobs.CancelJob): the runs it
	// should stop and report. It reads an index that holds only such runs,
	// so polling it is cheap.
	CancelRequested(ctx context.Context, server string) ([]int64, error)
	// AppendOutput stores chunks of live output of running attempts, in
	// the given order, in one transaction. A chunk whose run is no longer
	// running that attempt is dropped without error: it arrived late, and
	// the result has it. A run's chunks are deleted when an attempt of it
	// ends (CompleteRuns, ReleaseRuns, Rescuer.RescueExpired,
	// Jobs.CancelJob), so they only ever hold output of attempts still
	// running.
	AppendOutput(ctx context.Context, chunks []OutputChunk) error
	// Wake returns a channel that receives a value when work may have
	// become ready (a job was submitted or bumped) or a running run was
	// asked to stop (Jobs.CancelJob), by this process or, on PostgreSQL
	// (LISTEN/NOTIFY), by any server sharing the database. It
	// has a buffer of one, so signals coalesce; it has a single consumer
	// (the dispatcher) and is never closed. A dispatcher still polls: a
	// lost signal only delays work until the next poll.
	Wake() <-chan struct{}
}

// CompleteRun records one attempt's end with q.CompleteRuns and returns
// the run, or that completion's own error.
func CompleteRun(ctx context.Context, q WorkQueue, p CompleteParams) (Run, error) {
	res, err := q.CompleteRuns(ctx, []CompleteParams{p})
	if err != nil {
		return Run{}, err
	}
	if len(res) != 1 {
		return Run{}, fmt.Errorf("completing run %d: %d results for one completion", p.RunID, len(res))
	}
	return res[0].Run, res[0].Err
}

// Rescuer is the queue's maintenance: taking back the runs of workers that
// stopped renewing their leases (a server that died or lost the database).
// It acts on every server's runs, so it needs the database itself; it is
// apart from WorkQueue so that a remote worker need not offer it.
type Rescuer interface {
	// RescueExpired handles running runs whose lease expired before now:
	// requeued or failed per their job's LeasePolicy, or cancelled if their
	// cancel was requested. Live leases are never touched. It returns the
	// rescued runs' ids. Concurrent rescues, from any number of servers,
	// are safe.
	RescueExpired(ctx context.Context) ([]int64, error)
}

// Jobs is the API side of the queue: submitting jobs, reading jobs, runs,
// live output and stats, and the operator's cancel and bump.
type Jobs interface {
	// SubmitJob stores a job and one run per target in one transaction.
	// A target that already has a pending or scheduled run of the same kind
	// and spec is coalesced into it (one-shot jobs only): that run gets the
	// higher of the two priorities and the earlier RunAt. Pull jobs
	// coalesce the same way, so a node has at most one waiting pull run
	// per spec.
	SubmitJob(ctx context.Context, job Job) (SubmitResult, error)
	// CancelJob cancels the job (it is not repeated) in one transaction:
	//
	//   - its runs that have not started are cancelled;
	//   - its running runs get a cancel request, which their holder finds
	//     with WorkQueue.CancelRequested and answers by stopping the run
	//     and reporting the attempt (see WorkQueue.CompleteRuns: a failed
	//     attempt then ends cancelled, a succeeded one stays succeeded);
	//   - a run, waiting or running, that another live (uncancelled) job
	//     shares through coalescing is neither cancelled nor asked to stop:
	//     it is handed over to that job, and a running one keeps running.
	//
	// When it asks a run to stop it signals WorkQueue.Wake (and, on
	// PostgreSQL, the other servers' Wake), so its holder looks for cancel
	// requests at once. Cancelling a cancelled job again changes nothing
	// and returns zero counts.
	CancelJob(ctx context.Context, id int64) (CancelResult, error)
	// BumpJob moves the job's waiting runs to the front of the queue, ready now.
	// Runs still waiting for their dependencies (or blocked) keep waiting,
	// and go to the front once they are ready.
	BumpJob(ctx context.Context, id int64) error
	// RetryJob requeues the job's failed runs (those on node only, when it
	// is not empty), in one transaction: each goes back to pending, ready
	// now, with its job's retries again, and the runs of later jobs
	// blocked by it go back to waiting. It is ErrNotFound for an unknown
	// job, and ErrInvalid (saying why) for a cancelled or repeating job or
	// one without failed runs.
	RetryJob(ctx context.Context, id int64, node string) (RetryResult, error)
	// GetJob returns a job with its run counts, or ErrNotFound.
	GetJob(ctx context.Context, id int64) (Job, error)
	// ListJobs returns jobs with their run counts, newest first.
	ListJobs(ctx context.Context, f JobFilter) ([]Job, error)
	// GetRun returns a run, or ErrNotFound.
	GetRun(ctx context.Context, id int64) (Run, error)
	// ListRuns returns runs by id.
	ListRuns(ctx context.Context, f RunFilter) ([]Run, error)
	// ListOutput returns chunks of the runs serving a job, oldest first.
	ListOutput(ctx context.Context, f OutputFilter) ([]OutputChunk, error)
	// Stats takes a snapshot of the queue.
	Stats(ctx context.Context) (Stats, error)
}

// Store is the whole durable queue: every part, over one database.
// Implementations: internal/store/sqlite and internal/store/postgres, both checked by
// internal/store/storetest. Consumers take the part they use: the dispatcher a
// WorkQueue (and a Rescuer), the HTTP API Jobs and AuthStore, the agent
// listener Nodes (and, for reports, a WorkQueue).
type Store interface {
	WorkQueue
	Rescuer
	Jobs
	AuthStore
	Nodes
	Changes
	// Close releases the database.
	Close() error
}

// StoreOptions configures a Store. Build it with StoreOption values.
type StoreOptions struct {
	Now       func() time.Time // clock; default time.Now
	Rand      func() float64   // jitter source in [0,1); default math/rand/v2
	RetryBase time.Duration    // first retry delay before jitter; default 1s
	RetryMax  time.Duration    // cap on the retry delay; default 10m
}

// StoreOption sets one StoreOptions field.
type StoreOption func(*StoreOptions)

// WithNow sets the store's clock (tests inject a fake one).
func WithNow(now func() time.Time) StoreOption { return func(o *StoreOptions) { o.Now = now } }

// WithRand sets the jitter source, which must return values in [0,1).
func WithRand(r func() float64) StoreOption { return func(o *StoreOptions) { o.Rand = r } }

// WithRetryBackoff sets the first retry delay and the cap.
func WithRetryBackoff(base, max time.Duration) StoreOption {
	return func(o *StoreOptions) { o.RetryBase, o.RetryMax = base, max }
}

// NewStoreOptions applies opts over the defaults.
func NewStoreOptions(opts ...StoreOption) StoreOptions {
	o := StoreOptions{Now: time.Now, Rand: rand.Float64, RetryBase: time.Second, RetryMax: 10 * time.Minute}
	for _, f := range opts {
		f(&o)
	}
	return o
}

// RetryDelay is the backoff before the retry that follows attempt (1-based):
// base*2^(attempt-1), capped, with "equal jitter": half fixed, half random.
func (o StoreOptions) RetryDelay(attempt int) time.Duration {
	d := o.RetryBase
	for i := 1; i < attempt && d < o.RetryMax; i++ {
		d *= 2
	}
	d = min(d, o.RetryMax)
	return d/2 + time.Duration(o.Rand()*float64(d/2))
}
