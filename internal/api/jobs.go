package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/muster-run/muster"
)

// maxRunsPage bounds GET /api/v1/jobs/{id}/runs.
const maxRunsPage = 100000

// queryInt parses an optional integer query parameter; "" is 0.
func queryInt(v, name string, lo, hi int64) (int64, error) {
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < lo || n > hi {
		return 0, badRequest("%s: want an integer from %d to %d, got %q", name, lo, hi, v)
	}
	return n, nil
}

// jobID reads the {id} path value.
func jobID(r *http.Request) (int64, error) {
	v := r.PathValue("id")
	id, err := strconv.ParseInt(v, 10, 64)
	if err != nil || id <= 0 {
		return 0, badRequest("id: %q is not a job id (want a positive integer)", v)
	}
	return id, nil
}

// getJob loads a job or answers 404.
func (s *Server) getJob(ctx context.Context, id int64) (muster.Job, error) {
	j, err := s.store.GetJob(ctx, id)
	if errors.Is(err, muster.ErrNotFound) {
		return j, notFound("no job %d", id)
	}
	return j, err
}

// fileRefHint says why the API refuses "@file" target tokens.
const fileRefHint = "is a client-side file reference; the API takes target names, groups, globs and URIs " +
	"(the muster CLI expands @file before submitting)"

// refuseFileRefs refuses any comma- or whitespace-separated token of the
// target specs that starts with "@": in the CLI that names a file of
// targets, and the server must never read its own files for a client.
// The message names the token, never anything read from it.
func refuseFileRefs(specs []string) error {
	for _, spec := range specs {
		for _, tok := range strings.FieldsFunc(spec, func(r rune) bool { return r == ',' || unicode.IsSpace(r) }) {
			if strings.HasPrefix(tok, "@") {
				if len(tok) > 200 {
					tok = tok[:200] + "..."
				}
				return fieldErr("targets", "%q %s", tok, fileRefHint)
			}
		}
	}
	return nil
}

// resolveTargets turns the request's targets into node names for the
// caller who: each spec through Config.Resolve, in order, without
// duplicates. "@file" tokens are refused before anything is resolved, and
// the result is held to Config.MaxTargetsPerJob.
func (s *Server) resolveTargets(ctx context.Context, who muster.Token, t Targets) ([]string, error) {
	specs := t.Nodes
	if specs == nil {
		specs = []string{t.Spec}
	}
	if err := refuseFileRefs(specs); err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	var out []string
	for _, spec := range specs {
		var nodes []string
		if s.cfg.Resolve == nil {
			for _, n := range strings.Split(spec, ",") {
				if n = strings.TrimSpace(n); n != "" {
					nodes = append(nodes, n)
				}
			}
		} else {
			var err error
			if nodes, err = s.cfg.Resolve(ctx, who, spec); err != nil {
				switch {
				case errors.Is(err, ErrForbidden):
					s.log.Warn("job refused: targets not allowed", "actor", who.Name, "role", who.Role, "err", err)
					return nil, &apiError{http.StatusForbidden, CodeForbidden, "targets: " + err.Error(), nil}
				case muster.KindOf(err) == muster.KindInternal:
					return nil, fmt.Errorf("resolving targets %q: %w", spec, err)
				}
				return nil, fieldErr("targets", "%v", err)
			}
		}
		if len(nodes) == 0 {
			return nil, fieldErr("targets", "no targets match %q", spec)
		}
		for _, n := range nodes {
			if !seen[n] {
				seen[n] = true
				out = append(out, n)
			}
		}
	}
	if limit := s.cfg.MaxTargetsPerJob; limit > 0 && len(out) > limit {
		s.metrics.refuse(limitTargetsPerJob)
		s.log.Warn("job refused: too many targets", "actor", who.Name, "targets", len(out), "limit", limit)
		return nil, fieldErr("targets", "job resolves to %d targets; this server allows at most %d per job "+
			"(--max-targets-per-job)", len(out), limit)
	}
	return out, nil
}

// pageParams reads the "before" and "limit" query parameters of a list
// (limit 1-1000, default 100).
func pageParams(q url.Values) (before int64, limit int, err error) {
	if before, err = queryInt(q.Get("before"), "before", 0, 1<<62); err != nil {
		return 0, 0, err
	}
	l, err := queryInt(q.Get("limit"), "limit", 1, 1000)
	if err != nil {
		return 0, 0, err
	}
	if l == 0 {
		l = 100
	}
	return before, int(l), nil
}

// submitAudit is the audit detail of a submission: the request with its
// secrets and script body taken out of the spec, the resolved target count
// and how many nodes merged into pending runs.
type submitAudit struct {
	SubmitRequest
	TargetCount int `json:"target_count"`
	Coalesced   int `json:"coalesced,omitzero"`
}

// admitJob takes a job's place in the bucket of who's token
// (Config.MaxJobsPerMinute) before anything else is checked, so that
// concurrent submissions cannot overrun it; an empty bucket is a 429. The
// caller calls refund unless the job is stored.
func (s *Server) admitJob(who muster.Token) (refund func(), err error) {
	if s.jobRate == nil {
		return func() {}, nil
	}
	wait, ok := s.jobRate.take(who.Name, s.now())
	if !ok {
		s.metrics.refuse(limitJobsPerMinute)
		s.log.Warn("job refused: rate limit", "actor", who.Name, "limit", s.cfg.MaxJobsPerMinute, "retry_after", wait)
		secs := int64(max(1, math.Ceil(wait.Seconds())))
		return nil, &apiError{http.StatusTooManyRequests, CodeRateLimited,
			fmt.Sprintf("too many jobs: token %q may submit at most %d jobs a minute to this server "+
				"(--max-jobs-per-minute); retry in %ds", who.Name, s.cfg.MaxJobsPerMinute, secs),
			map[string]string{"Retry-After": strconv.FormatInt(secs, 10)}}
	}
	return func() { s.jobRate.refund(who.Name, s.now()) }, nil
}

func (s *Server) handleSubmit(w http.ResponseWriter, r *http.Request, who muster.Token) error {
	refund, err := s.admitJob(who)
	if err != nil {
		return err
	}
	stored := false
	defer func() {
		if !stored {
			refund()
		}
	}()
	req, err := DecodeSubmit(r.Body)
	if err != nil {
		return err
	}
	if err := req.Validate(); err != nil {
		return err
	}
	resolve, kind := s.resolveTargets, req.Kind
	if req.Pull {
		resolve, kind = s.resolveSignedNodes, muster.JobPull
	}
	nodes, err := resolve(r.Context(), who, req.Targets)
	if err != nil {
		return err
	}
	spec := req.Spec
	if s.cfg.Prepare != nil && !req.Pull {
		if err := s.cfg.Prepare(r.Context(), who, req.Kind, &spec); err != nil {
			var fe *FieldError
			switch {
			case errors.As(err, &fe):
				return fe
			case errors.Is(err, ErrForbidden):
				return &apiError{http.StatusForbidden, CodeForbidden, "spec: " + err.Error(), nil}
			}
			return fieldErr("spec", "%v", err)
		}
	}
	audited := req
	audited.Spec = spec.Redacted()
	if len(spec.Secrets) > 0 {
		if s.cfg.Sealer == nil {
			return fieldErr("spec.secrets", "this server has no secret key, so it cannot accept secrets "+
				"(sudo passwords, sensitive parameters)")
		}
		sealed, err := s.cfg.Sealer.Seal(spec.Secrets)
		if err != nil {
			return fmt.Errorf("sealing secrets: %w", err)
		}
		spec.Secrets, spec.Sealed = nil, sealed
	}
	raw, err := json.Marshal(spec)
	if err != nil {
		return fmt.Errorf("encoding the spec: %w", err)
	}
	job := muster.Job{
		Kind: kind, Spec: raw, Targets: nodes, Priority: req.Priority, RunAt: req.RunAt,
		Every: time.Duration(req.Every), Continuous: req.Continuous, MaxRetries: req.Retries,
		Timeout: time.Duration(req.Timeout), OnLeaseExpiry: req.OnLeaseExpiry, CreatedBy: who.Name,
	}
	for _, id := range req.After {
		job.After = append(job.After, muster.Dependency{JobID: id, Each: req.AfterEach})
	}
	for _, id := range req.AfterNode {
		job.After = append(job.After, muster.Dependency{JobID: id, Each: true})
	}
	job.Fingerprint, job.FactsUsed, job.DependsOnResult = req.Fingerprint, req.FactsUsed, req.DependsOnResult
	if job.OnChange, err = s.onChange(r.Context(), who, req.OnChange); err != nil {
		return err
	}
	if err := job.Validate(); err != nil {
		return badRequest("%s", joinLines(err))
	}
	res, err := s.store.SubmitJob(r.Context(), job)
	if errors.Is(err, muster.ErrInvalid) {
		return badRequest("%s", joinLines(err))
	} else if err != nil {
		return err
	}
	stored = true
	s.audit(r, who, "job.submit", fmt.Sprintf("job/%d", res.Job.ID), submitAudit{
		SubmitRequest: audited, TargetCount: len(nodes), Coalesced: len(res.Coalesced),
	})
	j := res.Job
	if got, err := s.store.GetJob(r.Context(), j.ID); err == nil {
		j = got
	}
	out := SubmitResponse{Job: jobView(j, true), Runs: res.Runs, Coalesced: res.Coalesced}
	if s.cfg.Inventory != nil {
		out.Inventory = s.cfg.Inventory()
	}
	if out.Coalesced == nil {
		out.Coalesced = []string{}
	}
	s.publish(j.ID)
	if req.Pull {
		s.publishNodes(r.Context(), nodes...)
	}
	w.Header().Set("Location", fmt.Sprintf("/api/v1/jobs/%d", j.ID))
	writeJSON(w, http.StatusCreated, out)
	return nil
}

// joinLines flattens an errors.Join message ("invalid request\nwhy").
func joinLines(err error) string {
	return strings.Join(strings.Split(err.Error(), "\n"), ": ")
}

func (s *Server) handleListJobs(w http.ResponseWriter, r *http.Request, _ muster.Token) error {
	q := r.URL.Query()
	f := muster.JobFilter{State: muster.JobState(q.Get("state"))}
	switch f.State {
	case "", muster.JobWaiting, muster.JobBlocked, muster.JobScheduled, muster.JobPending, muster.JobRunning,
		muster.JobSucceeded, muster.JobFailed, muster.JobCancelled:
	default:
		return badRequest("state: unknown job state %q (want waiting, blocked, scheduled, pending, running, succeeded, "+
			"failed or cancelled)", f.State)
	}
	before, limit, err := pageParams(q)
	if err != nil {
		return err
	}
	f.BeforeID, f.Limit = before, limit
	jobs, err := s.store.ListJobs(r.Context(), f)
	if err != nil {
		return err
	}
	out := JobList{Jobs: []JobView{}}
	for _, j := range jobs {
		out.Jobs = append(out.Jobs, jobView(j, false))
	}
	if len(jobs) == f.Limit {
		out.NextBefore = jobs[len(jobs)-1].ID
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) handleGetJob(w http.ResponseWriter, r *http.Request, _ muster.Token) error {
	id, err := jobID(r)
	if err != nil {
		return err
	}
	j, err := s.getJob(r.Context(), id)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, jobView(j, true))
	return nil
}

// parseStates reads a comma-separated list of run states.
func parseStates(v string) ([]muster.RunState, error) {
	if v == "" {
		return nil, nil
	}
	var out []muster.RunState
	for _, p := range strings.Split(v, ",") {
		st := muster.RunState(strings.TrimSpace(p))
		found := false
		for _, k := range muster.RunStates {
			found = found || k == st
		}
		if !found {
			return nil, badRequest("state: unknown run state %q", st)
		}
		out = append(out, st)
	}
	return out, nil
}

func (s *Server) handleRuns(w http.ResponseWriter, r *http.Request, _ muster.Token) error {
	id, err := jobID(r)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	states, err := parseStates(q.Get("state"))
	if err != nil {
		return err
	}
	limit, err := queryInt(q.Get("limit"), "limit", 1, maxRunsPage)
	if err != nil {
		return err
	}
	j, err := s.getJob(r.Context(), id)
	if err != nil {
		return err
	}
	if limit == 0 {
		limit = int64(min(max(1000, 2*len(j.Targets)), maxRunsPage))
	}
	runs, err := s.store.ListRuns(r.Context(), muster.RunFilter{JobID: id, Node: q.Get("node"), States: states, Limit: int(limit)})
	if err != nil {
		return err
	}
	out := RunList{Runs: []RunView{}}
	specs := specCache{}
	for _, run := range runs {
		out.Runs = append(out.Runs, runView(run, specs.get(run.Spec)))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// specCache decodes each distinct run spec once.
type specCache map[string]*muster.JobSpec

func (c specCache) get(raw json.RawMessage) *muster.JobSpec {
	if sp, ok := c[string(raw)]; ok {
		return sp
	}
	sp, _ := muster.DecodeJobSpec(raw)
	c[string(raw)] = &sp
	return &sp
}

// liveJob loads the job named in the path for verb (cancel, bump): a
// cancelled or finished job is a conflict (409).
func (s *Server) liveJob(r *http.Request, verb string) (int64, muster.Job, error) {
	id, err := jobID(r)
	if err != nil {
		return 0, muster.Job{}, err
	}
	j, err := s.getJob(r.Context(), id)
	if err != nil {
		return 0, muster.Job{}, err
	}
	switch {
	case !j.CancelledAt.IsZero():
		return 0, muster.Job{}, conflict("job %d is cancelled; there is nothing to %s", id, verb)
	case jobFinished(j):
		return 0, muster.Job{}, conflict("job %d has already finished (%s); there is nothing to %s", id, j.State(), verb)
	}
	return id, j, nil
}

func (s *Server) handleCancel(w http.ResponseWriter, r *http.Request, who muster.Token) error {
	id, j, err := s.liveJob(r, "cancel")
	if err != nil {
		return err
	}
	res, err := s.store.CancelJob(r.Context(), id)
	if err != nil {
		return err
	}
	s.publish(id)
	s.audit(r, who, "job.cancel", fmt.Sprintf("job/%d", id),
		map[string]any{"id": id, "cancelled_runs": res.Cancelled, "stopping_runs": res.Stopping})
	if got, err := s.store.GetJob(r.Context(), id); err == nil {
		j = got
	}
	writeJSON(w, http.StatusOK, CancelResponse{Job: jobView(j, true), Cancelled: res.Cancelled, Stopping: res.Stopping})
	return nil
}

func (s *Server) handleBump(w http.ResponseWriter, r *http.Request, who muster.Token) error {
	id, j, err := s.liveJob(r, "bump")
	if err != nil {
		return err
	}
	if err := s.store.BumpJob(r.Context(), id); err != nil {
		return err
	}
	s.publish(id)
	s.audit(r, who, "job.bump", fmt.Sprintf("job/%d", id), map[string]any{"id": id})
	if got, err := s.store.GetJob(r.Context(), id); err == nil {
		j = got
	}
	writeJSON(w, http.StatusOK, jobView(j, true))
	return nil
}

func (s *Server) handleStats(w http.ResponseWriter, r *http.Request, _ muster.Token) error {
	st, err := s.store.Stats(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, statsView(st))
	return nil
}

func (s *Server) handleRetry(w http.ResponseWriter, r *http.Request, who muster.Token) error {
	id, err := jobID(r)
	if err != nil {
		return err
	}
	if _, err := s.getJob(r.Context(), id); err != nil {
		return err
	}
	node := r.URL.Query().Get("node")
	res, err := s.store.RetryJob(r.Context(), id, node)
	switch {
	case errors.Is(err, muster.ErrNotFound):
		return notFound("no job %d", id)
	case errors.Is(err, muster.ErrInvalid):
		return conflict("%s", strings.TrimPrefix(joinLines(err), muster.ErrInvalid.Error()+": "))
	case err != nil:
		return err
	}
	s.publish(id)
	s.audit(r, who, "job.retry", fmt.Sprintf("job/%d", id),
		map[string]any{"id": id, "node": node, "retried_runs": len(res.Retried), "unblocked_runs": res.Unblocked})
	j, err := s.getJob(r.Context(), id)
	if err != nil {
		return err
	}
	out := RetryResponse{Job: jobView(j, true), Retried: res.Retried, Unblocked: res.Unblocked}
	if out.Retried == nil {
		out.Retried = []int64{}
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}
