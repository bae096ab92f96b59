package api

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/muster-run/muster"
)

// This file holds the API's wire types: what the server sends and the
// client decodes. The CLI renders them directly.

// Duration is a time.Duration that travels as a Go duration string
// ("90s", "5m", "1h30m").
type Duration time.Duration

// MarshalJSON writes d as a duration string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON reads a duration string; "" is zero.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("want a duration string such as \"90s\" or \"5m\"")
	}
	v, err := parseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

func parseDuration(s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("invalid duration %q (want a Go duration such as \"90s\", \"5m\" or \"1h30m\")", s)
	}
	return v, nil
}

// Targets is a submission's targets: either one target spec ("web*,db1"),
// resolved by the server against its inventory, or a list of entries,
// each resolved the same way (a plain node name resolves to itself).
type Targets struct {
	Spec  string   // set when the request gave a string
	Nodes []string // set when the request gave a list
}

// MarshalJSON writes a string when Spec is set, else the list.
func (t Targets) MarshalJSON() ([]byte, error) {
	if t.Nodes == nil {
		return json.Marshal(t.Spec)
	}
	return json.Marshal(t.Nodes)
}

// UnmarshalJSON accepts a string or a list of strings.
func (t *Targets) UnmarshalJSON(b []byte) error {
	v, err := decodeTargets(b)
	if err != nil {
		return err
	}
	*t = v
	return nil
}

// IsZero reports whether no targets were given.
func (t Targets) IsZero() bool { return t.Spec == "" && len(t.Nodes) == 0 }

// String renders the targets as a spec.
func (t Targets) String() string {
	if t.Nodes != nil {
		return strings.Join(t.Nodes, ",")
	}
	return t.Spec
}

// SubmitRequest is the body of POST /api/v1/jobs.
type SubmitRequest struct {
	Kind    muster.JobKind `json:"kind"`
	Targets Targets        `json:"targets"`
	Spec    muster.JobSpec `json:"spec"`
	// Priority: higher runs first.
	Priority int `json:"priority,omitzero"`
	// RunAt: not before this time (RFC 3339); zero means now.
	RunAt time.Time `json:"run_at,omitzero"`
	// Every makes the job recurring; Continuous re-queues each node's
	// next run at the back of the queue as soon as one ends.
	Every      Duration `json:"every,omitzero"`
	Continuous bool     `json:"continuous,omitzero"`
	// Retries: extra attempts after a failure.
	Retries int `json:"retries,omitzero"`
	// Timeout per run; zero means none.
	Timeout Duration `json:"timeout,omitzero"`
	// OnLeaseExpiry is "retry" (default) or "fail".
	OnLeaseExpiry muster.LeasePolicy `json:"on_lease_expiry,omitzero"`
	// Pull hands a command job to the targets' own agents (signed nodes,
	// matched by certname glob or inventory group) instead of running it
	// over SSH: each node's agent claims its run on its next check-in, and
	// a check-in held open hears of it at once.
	Pull bool `json:"pull,omitzero"`
	// After lists the ids of jobs this one runs after: each of its runs
	// starts only once every run of those jobs succeeded, and is blocked
	// (with the reason) when one failed for good or was cancelled, until
	// the failed runs are retried (POST /api/v1/jobs/{id}/retry).
	After []int64 `json:"after,omitempty"`
	// AfterEach makes After per node: a run waits only for those jobs'
	// runs on its own node (and not at all where they have none).
	AfterEach bool `json:"after_each,omitzero"`
	// AfterNode lists more jobs to run after, per node whatever AfterEach
	// says: a job may wait for some jobs whole and for others node by node.
	AfterNode []int64 `json:"after_node,omitempty"`
	// Fingerprint ("stdout", "json:FIELD", "file:PATH") says how a
	// continuous job's result on a node is fingerprinted; OnChange is
	// enqueued for a node whose fingerprint changed (the first one counts).
	// FactsUsed (dotted names) move a node's waiting run to the front when
	// one of them changes on it; DependsOnResult (a job id) moves every
	// waiting run of this job to the front when that job's result changes
	// on any node.
	Fingerprint     string           `json:"fingerprint,omitzero"`
	OnChange        *OnChangeRequest `json:"on_change,omitempty"`
	FactsUsed       []string         `json:"facts_used,omitempty"`
	DependsOnResult int64            `json:"depends_on_result,omitzero"`
}

// SubmitResponse answers a submission (201).
type SubmitResponse struct {
	Job JobView `json:"job"`
	// Runs maps each target to the run serving it.
	Runs map[string]int64 `json:"runs"`
	// Coalesced lists the targets merged into an existing waiting run.
	Coalesced []string `json:"coalesced"`
	// Inventory is where the server resolved the targets: its inventory
	// file, or "" when it has none (ad-hoc targets only).
	Inventory string `json:"inventory,omitempty"`
}

// JobView is a job as the API shows it. Spec is redacted: no secret or
// sealed value and no script body.
type JobView struct {
	ID    int64           `json:"id"`
	Kind  muster.JobKind  `json:"kind"`
	State muster.JobState `json:"state"`
	// Finished: every run is final and none will follow (a recurring or
	// continuous job finishes only once cancelled).
	Finished bool           `json:"finished"`
	Object   string         `json:"object"`
	Spec     muster.JobSpec `json:"spec"`
	// Targets is omitted from job lists; TargetCount is always set.
	Targets       []string           `json:"targets,omitempty"`
	TargetCount   int                `json:"target_count"`
	Priority      int                `json:"priority"`
	RunAt         time.Time          `json:"run_at,omitzero"`
	Every         Duration           `json:"every,omitzero"`
	Continuous    bool               `json:"continuous"`
	Retries       int                `json:"retries"`
	Timeout       Duration           `json:"timeout,omitzero"`
	OnLeaseExpiry muster.LeasePolicy `json:"on_lease_expiry"`
	CreatedBy     string             `json:"created_by"`
	CreatedAt     time.Time          `json:"created_at"`
	CancelledAt   time.Time          `json:"cancelled_at,omitzero"`
	// After lists the jobs this one runs after; AfterEach says the
	// dependencies are per node. A waiting run waits for them; a blocked
	// run's error says which of their runs failed.
	After     []int64 `json:"after,omitempty"`
	AfterEach bool    `json:"after_each,omitzero"`
	// AfterNode lists the jobs of After that are per node.
	AfterNode []int64                 `json:"after_node,omitempty"`
	Counts    map[muster.RunState]int `json:"counts"`
	// The change-driven fields (see SubmitRequest); OnChange is the kind
	// of the on-change action ("command", "task" or "agent-run").
	Fingerprint     string   `json:"fingerprint,omitzero"`
	OnChange        string   `json:"on_change,omitzero"`
	FactsUsed       []string `json:"facts_used,omitempty"`
	DependsOnResult int64    `json:"depends_on_result,omitzero"`
}

// JobList is a page of jobs, newest first. NextBefore, when non-zero, is
// the "before" value of the next page.
type JobList struct {
	Jobs       []JobView `json:"jobs"`
	NextBefore int64     `json:"next_before,omitzero"`
}

// RunView is one node-run. Target, Action, Object, Status and Value are
// the fields of a Bolt result item; Status and Value are set once the run
// is final.
type RunView struct {
	ID     int64           `json:"id"`
	JobID  int64           `json:"job_id"`
	Target string          `json:"target"`
	Action string          `json:"action"`
	Object string          `json:"object"`
	State  muster.RunState `json:"state"`
	Status string          `json:"status,omitempty"`
	Value  map[string]any  `json:"value,omitempty"`
	// Attempt counts claims; 1 during the first attempt.
	Attempt    int       `json:"attempt"`
	MaxRetries int       `json:"max_retries"`
	RunAt      time.Time `json:"run_at,omitzero"`
	CreatedAt  time.Time `json:"created_at"`
	StartedAt  time.Time `json:"started_at,omitzero"`
	FinishedAt time.Time `json:"finished_at,omitzero"`
	ExitCode   int       `json:"exit_code"`
	Error      string    `json:"error,omitempty"`
}

// Result rebuilds the Bolt-shaped result of a final run (nil while the
// run is not final).
func (v RunView) Result() *muster.Result {
	if !v.State.Final() {
		return nil
	}
	r := &muster.Result{Target: v.Target, Action: v.Action, Object: v.Object, Value: map[string]any{}}
	for k, x := range v.Value {
		if k != "_error" {
			r.Value[k] = x
		}
	}
	if e, ok := v.Value["_error"]; ok {
		b, _ := json.Marshal(e)
		r.Error = &muster.Error{}
		if json.Unmarshal(b, r.Error) != nil || r.Error.Kind == "" {
			r.Error = muster.Errorf(muster.KindInternal, "%s", v.Error)
		}
		if r.Error.Details == nil {
			r.Error.Details = map[string]any{}
		}
	} else if v.Status == muster.StatusFailure {
		r.Error = muster.Errorf(muster.KindInternal, "%s", v.Error)
	}
	return r
}

// RunList holds a job's runs, by id.
type RunList struct {
	Runs []RunView `json:"runs"`
}

// CancelResponse answers a cancellation.
type CancelResponse struct {
	Job JobView `json:"job"`
	// Cancelled counts the runs that had not started and were cancelled.
	Cancelled int `json:"cancelled"`
	// Stopping counts the running runs being stopped: each ends cancelled
	// once stopped, or succeeded if it finished first. (A running run that
	// also serves another live job keeps running and is not counted.)
	Stopping int `json:"stopping"`
}

// RetryResponse answers POST /api/v1/jobs/{id}/retry.
type RetryResponse struct {
	Job JobView `json:"job"`
	// Retried lists the ids of the runs requeued.
	Retried []int64 `json:"retried"`
	// Unblocked counts the blocked runs of later jobs that went back to
	// waiting.
	Unblocked int `json:"unblocked"`
}

// The event types of GET /api/v1/jobs/{id}/events.
const (
	EventRun = "run" // a run changed state (Run is set)
	EventJob = "job" // the job's summary with its counts (Job is set)
	EventEnd = "end" // the job finished: the last event (Job is set)
	// EventOutput is live output of a running attempt (Output is set).
	EventOutput = "output"
)

// Event is one server-sent event of a job's stream.
type Event struct {
	Type string    `json:"type"`
	Time time.Time `json:"time"`
	Job  *JobView  `json:"job,omitempty"`
	Run  *RunView  `json:"run,omitempty"`
	// Output is set on "output" events.
	Output *OutputView `json:"output,omitempty"`
}

// OutputView is a piece of a running attempt's live output: whole lines
// (a very long line may come in parts). The attempt's output, shown live
// or not, is also in its run's result once it ends; what was streamed is
// always a prefix of it, and past 1 MiB per stream nothing more is
// streamed.
type OutputView struct {
	RunID   int64  `json:"run_id"`
	Attempt int    `json:"attempt"`
	Target  string `json:"target"`
	Stream  string `json:"stream"` // "stdout" or "stderr"
	Data    string `json:"data"`
}

// Percentiles are a sample's percentiles, in seconds.
type Percentiles struct {
	N   int     `json:"n"`
	P50 float64 `json:"p50_seconds"`
	P95 float64 `json:"p95_seconds"`
	P99 float64 `json:"p99_seconds"`
}

// Window counts or rates finished runs over the last 1, 5 and 15 minutes.
type Window[T int | float64] struct {
	M1  T `json:"1m"`
	M5  T `json:"5m"`
	M15 T `json:"15m"`
}

// StatsView is the queue snapshot of GET /api/v1/stats.
type StatsView struct {
	// Counts has every run state, zero or not.
	Counts                map[muster.RunState]int `json:"counts"`
	Ready                 int                     `json:"ready"`
	OldestReadyAgeSeconds float64                 `json:"oldest_ready_age_seconds"`
	// Wait (ready to started) and RunTime (started to finished) over the
	// most recent finished runs.
	Wait    Percentiles `json:"wait"`
	RunTime Percentiles `json:"run_time"`
	// Finished runs, and the throughput they imply (runs per second).
	Finished   Window[int]     `json:"finished"`
	Throughput Window[float64] `json:"throughput_per_second"`
}

// TokenView is an API token's record, without its secret or hash.
type TokenView struct {
	ID         int64       `json:"id"`
	Name       string      `json:"name"`
	Role       muster.Role `json:"role"`
	CreatedBy  string      `json:"created_by"`
	CreatedAt  time.Time   `json:"created_at"`
	LastUsedAt time.Time   `json:"last_used_at,omitzero"`
	RevokedAt  time.Time   `json:"revoked_at,omitzero"`
	Revoked    bool        `json:"revoked"`
}

// TokenRequest is the body of POST /api/v1/tokens.
type TokenRequest struct {
	Name string      `json:"name"`
	Role muster.Role `json:"role"`
}

// CreatedToken answers a token creation. Secret is shown this once.
type CreatedToken struct {
	Token  TokenView `json:"token"`
	Secret string    `json:"secret"`
}

// TokenList holds every token, live and revoked, by id.
type TokenList struct {
	Tokens []TokenView `json:"tokens"`
}

// AuditView is one audit entry. Detail is the request's non-secret fields.
type AuditView struct {
	ID     int64           `json:"id"`
	At     time.Time       `json:"at"`
	Actor  string          `json:"actor"`
	Role   muster.Role     `json:"role"`
	Action string          `json:"action"`
	Object string          `json:"object"`
	Remote string          `json:"remote"`
	Detail json.RawMessage `json:"detail,omitempty"`
}

// AuditList is a page of audit entries, newest first.
type AuditList struct {
	Entries    []AuditView `json:"entries"`
	NextBefore int64       `json:"next_before,omitzero"`
}

// ErrorBody is every error response: {"error":{"code":...,"message":...}}.
type ErrorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// The error codes.
const (
	CodeInvalid          = "invalid_input"
	CodeUnauthorized     = "unauthorized"
	CodeForbidden        = "forbidden"
	CodeNotFound         = "not_found"
	CodeMethodNotAllowed = "method_not_allowed"
	CodeConflict         = "conflict"
	CodeTooLarge         = "payload_too_large"
	CodeUnsupportedMedia = "unsupported_media_type"
	CodeRateLimited      = "rate_limited"
	CodeUnavailable      = "unavailable"
	CodeInternal         = "internal"
)

// jobView converts a stored job. withTargets includes its target list.
func jobView(j muster.Job, withTargets bool) JobView {
	spec, _ := muster.DecodeJobSpec(j.Spec)
	v := JobView{
		ID: j.ID, Kind: j.Kind, State: j.State(), Finished: jobFinished(j),
		Object: spec.Object(j.Kind), Spec: spec.Redacted(), TargetCount: len(j.Targets),
		Priority: j.Priority, RunAt: j.RunAt, Every: Duration(j.Every), Continuous: j.Continuous,
		Retries: j.MaxRetries, Timeout: Duration(j.Timeout), OnLeaseExpiry: j.OnLeaseExpiry,
		CreatedBy: j.CreatedBy, CreatedAt: j.CreatedAt, CancelledAt: j.CancelledAt,
		Counts: map[muster.RunState]int{},
	}
	if withTargets {
		v.Targets = append([]string{}, j.Targets...)
	}
	v.Fingerprint, v.FactsUsed, v.DependsOnResult = j.Fingerprint, j.FactsUsed, j.DependsOnResult
	if j.OnChange != nil {
		v.OnChange = string(j.OnChange.Kind)
		if j.OnChange.Kind == muster.JobPull {
			v.OnChange = OnChangeAgentRun
		}
	}
	for _, d := range j.After {
		v.After = append(v.After, d.JobID)
		v.AfterEach = v.AfterEach || d.Each
		if d.Each {
			v.AfterNode = append(v.AfterNode, d.JobID)
		}
	}
	for st, n := range j.Counts {
		if n != 0 {
			v.Counts[st] = n
		}
	}
	return v
}

// jobFinished: every run is final, and none will follow.
func jobFinished(j muster.Job) bool {
	total := 0
	for st, n := range j.Counts {
		if !st.Final() && n > 0 {
			return false
		}
		total += n
	}
	if (j.Every > 0 || j.Continuous) && j.CancelledAt.IsZero() {
		return false
	}
	return total > 0 || !j.CancelledAt.IsZero()
}

// runView converts a stored run; spec is its decoded job spec.
func runView(r muster.Run, spec *muster.JobSpec) RunView {
	v := RunView{
		ID: r.ID, JobID: r.JobID, Target: r.Node, Action: string(r.Kind), Object: spec.Object(r.Kind),
		State: r.State, Attempt: r.Attempt, MaxRetries: r.MaxRetries, RunAt: r.RunAt,
		CreatedAt: r.CreatedAt, StartedAt: r.StartedAt, FinishedAt: r.FinishedAt,
		ExitCode: r.ExitCode, Error: r.Error,
	}
	if len(r.Result) > 0 {
		var res struct {
			Action string         `json:"action"`
			Object any            `json:"object"`
			Status string         `json:"status"`
			Value  map[string]any `json:"value"`
		}
		if json.Unmarshal(r.Result, &res) == nil {
			v.Status, v.Value = res.Status, res.Value
			if res.Action != "" {
				v.Action = res.Action
			}
			if o, ok := res.Object.(string); ok && o != "" {
				v.Object = o
			}
		}
	}
	if !r.State.Final() {
		return v
	}
	if v.Status == "" {
		v.Status = muster.StatusSuccess
		if r.State != muster.RunSucceeded {
			v.Status = muster.StatusFailure
		}
	}
	if v.Status == muster.StatusFailure && v.Value["_error"] == nil {
		kind, msg := muster.KindInternal, r.Error
		if r.State == muster.RunCancelled {
			kind = muster.KindCancelled
			if msg == "" {
				msg = "the job was cancelled before this run started"
			}
		}
		if msg == "" {
			msg = "the run failed"
		}
		if v.Value == nil {
			v.Value = map[string]any{}
		}
		v.Value["_error"] = map[string]any{"kind": kind, "msg": msg, "details": map[string]any{}}
	}
	if v.Value == nil {
		v.Value = map[string]any{}
	}
	return v
}

func tokenView(t muster.Token) TokenView {
	return TokenView{ID: t.ID, Name: t.Name, Role: t.Role, CreatedBy: t.CreatedBy, CreatedAt: t.CreatedAt,
		LastUsedAt: t.LastUsedAt, RevokedAt: t.RevokedAt, Revoked: !t.RevokedAt.IsZero()}
}

func auditView(e muster.AuditEntry) AuditView {
	v := AuditView{ID: e.ID, At: e.At, Actor: e.Actor, Role: e.Role, Action: e.Action, Object: e.Object, Remote: e.Remote}
	if e.Detail != "" {
		if json.Valid([]byte(e.Detail)) {
			v.Detail = json.RawMessage(e.Detail)
		} else {
			v.Detail, _ = json.Marshal(e.Detail)
		}
	}
	return v
}

func statsView(st muster.Stats) StatsView {
	p := func(x muster.Percentiles) Percentiles {
		return Percentiles{N: x.N, P50: x.P50.Seconds(), P95: x.P95.Seconds(), P99: x.P99.Seconds()}
	}
	v := StatsView{
		Counts: map[muster.RunState]int{}, Ready: st.Ready, OldestReadyAgeSeconds: st.OldestReadyAge.Seconds(),
		Wait: p(st.Wait), RunTime: p(st.RunTime),
		Finished: Window[int]{st.Finished1m, st.Finished5m, st.Finished15m},
		Throughput: Window[float64]{
			float64(st.Finished1m) / 60, float64(st.Finished5m) / 300, float64(st.Finished15m) / 900,
		},
	}
	for _, s := range muster.RunStates {
		v.Counts[s] = st.Counts[s]
	}
	return v
}
