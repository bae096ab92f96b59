package muster

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"
)

// This file is the durable job queue's vocabulary and the Store contract
// that the sqlite and postgres adapters implement (see docs/architecture.md, "The
// contracts"). The invariants live in the database: every state
// transition is one transaction, and a partial unique index on runs(node)
// WHERE state='running' makes a second running run on a node impossible.
//
// Secrets are not handled here: a job's Spec is stored exactly as given, so
// a caller must encrypt sensitive fields (sudo passwords, sensitive task
// parameters) before SubmitJob and decrypt them after claiming.

// JobKind is what a job runs.
type JobKind string

// The job kinds.
const (
	JobCommand JobKind = "command"
	JobTask    JobKind = "task"
	JobScript  JobKind = "script"
	JobPlan    JobKind = "plan"
	// JobPull is a pull-mode run: the node's own agent (`muster agent`)
	// claims and runs it when it checks in (Nodes.ClaimNodeRun), never a
	// server's dispatcher (WorkQueue.ClaimRuns). Its spec may be empty
	// (the server fills in the command from its pull configuration when it
	// hands the run out) or carry a Command and SuccessCodes.
	JobPull JobKind = "pull"
)

// Valid reports whether k is one of the known kinds.
func (k JobKind) Valid() bool {
	switch k {
	case JobCommand, JobTask, JobScript, JobPlan, JobPull:
		return true
	}
	return false
}

// RunState is the state of one node-run.
//
//	scheduled -> pending -> running -> succeeded | failed | cancelled
//	                          running -> retrying -> pending (after backoff)
//	waiting -> pending | scheduled   (its dependencies succeeded)
//	waiting -> blocked -> waiting    (a dependency failed; it was retried)
type RunState string

// The run states.
const (
	// RunScheduled waits for its RunAt.
	RunScheduled RunState = "scheduled"
	// RunPending is ready to be claimed.
	RunPending RunState = "pending"
	// RunRunning is held by a server under a lease.
	RunRunning RunState = "running"
	// RunSucceeded, RunFailed and RunCancelled are final.
	RunSucceeded RunState = "succeeded"
	RunFailed    RunState = "failed"
	RunCancelled RunState = "cancelled"
	// RunRetrying failed and waits for its backoff to elapse.
	RunRetrying RunState = "retrying"
	// RunWaiting waits for its dependencies (Job.After): the runs of
	// other jobs that must succeed before it may start. It is never
	// claimed.
	RunWaiting RunState = "waiting"
	// RunBlocked will not run: a run it depends on ended failed or
	// cancelled for good. Its Error says which and why. Retrying the
	// failed work (Jobs.RetryJob) sends it back to waiting.
	RunBlocked RunState = "blocked"
)

// RunStates lists every run state, in lifecycle order.
var RunStates = []RunState{RunWaiting, RunBlocked, RunScheduled, RunPending, RunRunning, RunRetrying, RunSucceeded,
	RunFailed, RunCancelled}

// Final reports whether s is a terminal state.
func (s RunState) Final() bool {
	return s == RunSucceeded || s == RunFailed || s == RunCancelled
}

// LeasePolicy says what the rescuer does with a run whose lease expired
// (its server died or lost the database).
type LeasePolicy string

// The lease-expiry policies.
const (
	// LeaseRetry requeues the run where it was in the queue. The lost
	// attempt still counts (Attempt goes up), so a run that later fails
	// has one retry fewer left.
	LeaseRetry LeasePolicy = "retry"
	// LeaseFail marks the run failed.
	LeaseFail LeasePolicy = "fail"
)

// JobState summarises a job's runs (see Job.State).
type JobState string

// The job states.
const (
	JobWaiting   JobState = "waiting"   // runs wait for the jobs it runs after
	JobBlocked   JobState = "blocked"   // runs are blocked by a failed dependency
	JobScheduled JobState = "scheduled" // nothing ready or running yet
	JobPending   JobState = "pending"   // some run is ready, none running
	JobRunning   JobState = "running"   // some run is running
	JobSucceeded JobState = "succeeded" // every run succeeded
	JobFailed    JobState = "failed"    // every run is final, some failed
	JobCancelled JobState = "cancelled" // CancelJob was called
)

// Job is one request: a kind and spec against a list of targets. It becomes
// one node-run per target.
type Job struct {
	ID      int64
	Kind    JobKind
	Spec    json.RawMessage // stored as given: encrypt secrets before submitting
	Targets []string        // node names, one run each
	// Priority: higher runs first. Default 0; negative values are allowed.
	Priority   int
	RunAt      time.Time     // not before; zero means now
	Every      time.Duration // >0: after a node's run ends, its next run is due RunAt+Every later
	Continuous bool          // after a node's run ends, its next run goes to the back of the queue
	MaxRetries int           // extra attempts after a failure, with exponential backoff and jitter
	Timeout    time.Duration // per run, enforced by the executor; 0 means none
	// OnLeaseExpiry is LeaseRetry (the default) or LeaseFail.
	OnLeaseExpiry LeasePolicy
	CreatedBy     string
	CreatedAt     time.Time
	CancelledAt   time.Time // zero unless cancelled

	// After lists the jobs this one runs after: its runs start only once
	// theirs succeeded (see Dependency). A job with dependencies is never
	// coalesced into other jobs' waiting runs. Dependencies are fixed at
	// submit and always name older jobs, so they cannot form a cycle.
	After []Dependency

	// Change-driven continuous jobs (change.go; all need Continuous):
	// Fingerprint ("stdout", "json:FIELD", "file:PATH") says how a node's
	// result is fingerprinted; when a node's fingerprint differs from its
	// last one (the first one counts: there was none), OnChange, if set,
	// is enqueued for that node. FactsUsed lists the facts (dotted names)
	// whose change moves a node's waiting run to the front
	// (Changes.FactsChanged); DependsOnResult names a job whose
	// fingerprint changing on any node moves this job's waiting runs to
	// the front.
	Fingerprint     string
	OnChange        *OnChange
	FactsUsed       []string
	DependsOnResult int64
	// OnceKey, when set, makes the job unique: a submit whose key a job
	// already holds (cancelled or not) stores nothing and returns that job
	// (SubmitResult.Existing), across every server on the database.
	OnceKey string

	// Filled in by GetJob and ListJobs: runs serving this job, by state.
	// A coalesced run is counted in every job it serves.
	Counts map[RunState]int
}

// State derives the job's state from CancelledAt and Counts.
func (j Job) State() JobState {
	c := j.Counts
	switch {
	case !j.CancelledAt.IsZero():
		return JobCancelled
	case c[RunRunning] > 0:
		return JobRunning
	case c[RunPending] > 0:
		return JobPending
	case c[RunScheduled] > 0 || c[RunRetrying] > 0:
		return JobScheduled
	case c[RunWaiting] > 0:
		return JobWaiting
	case c[RunBlocked] > 0:
		return JobBlocked
	case c[RunFailed] > 0 || c[RunCancelled] > 0:
		return JobFailed
	}
	return JobSucceeded
}

// Run is one node-run: one attempt-carrying unit of work on one node.
type Run struct {
	ID       int64
	JobID    int64 // the job that owns it (its retry, timeout and lease policy)
	Node     string
	Kind     JobKind
	Spec     json.RawMessage
	Priority int
	State    RunState
	// Attempt counts claims; it is 1 during the first run.
	Attempt       int
	MaxRetries    int
	Timeout       time.Duration
	OnLeaseExpiry LeasePolicy
	RunAt         time.Time // when it became or becomes ready
	CreatedAt     time.Time
	StartedAt     time.Time // of the latest attempt
	FinishedAt    time.Time
	LeaseOwner    string
	LeaseExpires  time.Time
	ExitCode      int
	Error         string
	Result        json.RawMessage
	// Fingerprint is the job's Fingerprint spec, filled in by ClaimRuns:
	// the worker computes the fingerprint and reports it
	// (CompleteParams.Fingerprint).
	Fingerprint string
}

// Wait is how long the run waited between becoming ready and starting.
func (r Run) Wait() time.Duration { return r.StartedAt.Sub(r.RunAt) }

// Outcome is how a run attempt ended.
type Outcome string

// The outcomes a server reports.
const (
	OutcomeSucceeded Outcome = "succeeded"
	OutcomeFailed    Outcome = "failed"
)

// Dependency is one job another runs after.
type Dependency struct {
	JobID int64
	// Each makes the dependency per node: the dependent's run on node X
	// waits only for JobID's runs on X (and not at all when JobID has
	// none there). Without it, every run waits for all of JobID's runs.
	Each bool
}

// MaxAfter bounds a job's dependencies.
const MaxAfter = 100

// RetryResult says what Jobs.RetryJob did.
type RetryResult struct {
	// Retried lists the runs requeued, by id.
	Retried []int64
	// Unblocked counts the blocked runs (of the jobs that run after this
	// one) that went back to waiting.
	Unblocked int
}

// SubmitResult says which run serves each target of a new job.
type SubmitResult struct {
	Job Job
	// Runs maps each target to the run serving it: a new one, or an
	// existing pending run it was coalesced into.
	Runs map[string]int64
	// Coalesced lists the targets that merged into an existing run.
	Coalesced []string
	// Existing says nothing was stored: Job holds the submitted OnceKey
	// already (Runs is then empty).
	Existing bool
}

// ClaimParams asks for ready runs.
type ClaimParams struct {
	Server     string        // lease owner
	Limit      int           // at most this many runs in this batch
	LeaseTTL   time.Duration // lease length; renew with Heartbeat
	MaxRunning int           // global cap on running runs across servers; 0 means no cap
}

// HeartbeatParams extends a server's leases.
type HeartbeatParams struct {
	Server   string
	LeaseTTL time.Duration
}

// CompleteParams reports the end of a run attempt.
type CompleteParams struct {
	RunID    int64
	Server   string
	Attempt  int // the Run.Attempt that was claimed
	Outcome  Outcome
	ExitCode int
	Error    string
	Result   json.RawMessage
	// Fingerprint of a succeeded attempt of a job with a Fingerprint
	// spec (see FingerprintSpec); empty when not computed. The store
	// compares it with the node's last one in the same transaction.
	Fingerprint string
}

// CancelResult says what CancelJob did.
type CancelResult struct {
	// Cancelled counts the job's runs that had not started and now never
	// will.
	Cancelled int
	// Stopping counts the job's running runs that were asked to stop (see
	// WorkQueue.CancelRequested); each ends cancelled once its holder stops
	// it, or succeeded if it finished first.
	Stopping int
}

// CompleteResult is one completion's outcome in CompleteRuns.
type CompleteResult struct {
	Run Run
	Err error
	// Change is set when the completion changed the node's fingerprint.
	Change *ResultChange
}

// JobFilter selects jobs for ListJobs, newest first.
type JobFilter struct {
	State    JobState // empty means any
	BeforeID int64    // paging: only jobs with a smaller id; 0 means no bound
	Limit    int      // 0 means 100
}

// RunFilter selects runs for ListRuns, by id.
type RunFilter struct {
	JobID  int64 // runs serving this job (including coalesced ones); 0 means any
	Node   string
	States []RunState
	Limit  int // 0 means 1000
}

// OutputChunk is a piece of a running attempt's live output: whole lines
// of its stdout or stderr, as the server running it flushed them. Live
// output is a view for watchers; the run's result holds the complete
// output once the attempt ends.
type OutputChunk struct {
	ID      int64 // assigned by AppendOutput, increasing in append order
	RunID   int64
	Attempt int
	Node    string // the run's node (filled in by ListOutput)
	Stream  string // OutputStdout or OutputStderr
	Data    []byte
	At      time.Time // when it was appended
}

// Output streams.
const (
	OutputStdout = "stdout"
	OutputStderr = "stderr"
)

// OutputFilter selects chunks for ListOutput.
type OutputFilter struct {
	JobID   int64 // chunks of runs serving this job (including coalesced ones); required
	AfterID int64 // paging: only chunks with a larger id
	Limit   int   // 0 means 1000
}

// Percentiles summarises a sample of durations.
type Percentiles struct {
	N             int
	P50, P95, P99 time.Duration
}

// Stats is a snapshot of the queue.
type Stats struct {
	Counts map[RunState]int
	// Ready runs (pending, or scheduled/retrying with RunAt passed), and the
	// age of the oldest one: the signal to add capacity.
	Ready          int
	OldestReadyAge time.Duration
	// Over the most recent finished runs (up to 1000).
	Wait, RunTime Percentiles
	// Finished runs in the last 1, 5 and 15 minutes.
	Finished1m, Finished5m, Finished15m int
}

// Errors returned by a Store.
var (
	ErrNotFound  = errors.New("not found")
	ErrLeaseLost = errors.New("lease lost: the run is no longer held by this server and attempt")
	ErrInvalid   = errors.New("invalid request")
)

// maxOnceKey bounds Job.OnceKey.
const maxOnceKey = 512

// Validate checks a job before it is submitted and fills in defaults.
func (j *Job) Validate() error {
	switch {
	case !j.Kind.Valid():
		return errors.Join(ErrInvalid, errors.New("unknown job kind "+string(j.Kind)))
	case len(j.Targets) == 0:
		return errors.Join(ErrInvalid, errors.New("a job needs at least one target"))
	case j.MaxRetries < 0 || j.Every < 0 || j.Timeout < 0:
		return errors.Join(ErrInvalid, errors.New("negative retries, interval or timeout"))
	case j.Every > 0 && j.Continuous:
		return errors.Join(ErrInvalid, errors.New("a job is either recurring or continuous"))
	case len(j.After) > MaxAfter:
		return errors.Join(ErrInvalid, fmt.Errorf("after: %d jobs; a job may run after at most %d", len(j.After), MaxAfter))
	case len(j.OnceKey) > maxOnceKey:
		return errors.Join(ErrInvalid, fmt.Errorf("once key: %d bytes; at most %d", len(j.OnceKey), maxOnceKey))
	}
	after := map[int64]bool{}
	for _, d := range j.After {
		if d.JobID <= 0 || after[d.JobID] {
			return errors.Join(ErrInvalid, fmt.Errorf("after: job id %d is not positive or is listed twice", d.JobID))
		}
		after[d.JobID] = true
	}
	if err := j.checkChange(); err != nil {
		return errors.Join(ErrInvalid, err)
	}
	if len(j.Spec) == 0 {
		j.Spec = json.RawMessage("{}")
	}
	if !json.Valid(j.Spec) {
		return errors.Join(ErrInvalid, errors.New("spec is not valid JSON"))
	}
	switch j.OnLeaseExpiry {
	case "":
		j.OnLeaseExpiry = LeaseRetry
	case LeaseRetry, LeaseFail:
	default:
		return errors.Join(ErrInvalid, errors.New("unknown lease policy "+string(j.OnLeaseExpiry)))
	}
	seen := map[string]bool{}
	for _, t := range j.Targets {
		if t == "" || seen[t] {
			return errors.Join(ErrInvalid, errors.New("empty or duplicate target "+t))
		}
		seen[t] = true
	}
	return nil
}

// PercentilesOf computes nearest-rank percentiles of ds (which it sorts).
func PercentilesOf(ds []time.Duration) Percentiles {
	if len(ds) == 0 {
		return Percentiles{}
	}
	slices.Sort(ds)
	at := func(p int) time.Duration {
		i := (p*len(ds) + 99) / 100 // ceil(p/100*n), 1-based
		return ds[max(i, 1)-1]
	}
	return Percentiles{N: len(ds), P50: at(50), P95: at(95), P99: at(99)}
}
