package checkins

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"time"

	"github.com/muster-run/muster"
	"github.com/muster-run/muster/internal/checkin"
	"github.com/muster-run/muster/internal/events"
	"github.com/muster-run/muster/internal/pki"
	"github.com/muster-run/muster/internal/pull"
)

// owner is the lease owner of a node's pull runs: its agent.
func owner(certname string) string { return "agent:" + certname }

// handedOut is what the server told an agent to run, kept until its
// report (a report after a restart falls back to the configuration).
type handedOut struct {
	backend string
	codes   []int
}

// handleCheckIn answers "should I run now?", holding the request open up
// to its Wait (long poll) so that a run asked for meanwhile (muster node
// run) reaches the agent at once.
func (s *Server) handleCheckIn(w http.ResponseWriter, r *http.Request, certname string) error {
	var req checkin.CheckInRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	if err := req.Validate(); err != nil {
		return errorf(http.StatusBadRequest, "invalid", "%v", err)
	}
	ctx := r.Context()
	node, err := s.cfg.Store.GetNode(ctx, certname)
	if err != nil {
		return err
	}
	// Seen now, not only when answered: a check-in held for minutes (long
	// poll) is a live agent all along (deploy's liveness reads this).
	s.noteSeen(certname, s.now(), time.Time{})
	if len(req.Changed) > 0 {
		s.log.Info("watched files changed on the node: forcing a run", "certname", certname, "files", req.Changed)
	}
	deadline := s.now().Add(min(req.Wait, s.cfg.MaxWait))
	var asked <-chan struct{}
	if s.cfg.Events != nil {
		sub := s.cfg.Events.SubscribeNode(certname)
		defer sub.Close()
		asked = sub.C
	}
	force := len(req.Changed) > 0
	for {
		now := s.now()
		resp, err := s.decide(ctx, node, req, force, now)
		if err != nil {
			return err
		}
		if resp.Run != nil || !now.Before(deadline) {
			s.noteSeen(certname, now, resp.Next)
			writeJSON(w, http.StatusOK, resp)
			return nil
		}
		until := deadline
		if resp.Next.Before(until) {
			until = resp.Next
		}
		t := time.NewTimer(until.Sub(now))
		select {
		case <-asked:
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil
		}
		t.Stop()
	}
}

// decide asks the scheduler about the node and, when it runs now, queues
// its pull run (unless one waits already) and claims it for the agent.
func (s *Server) decide(ctx context.Context, node muster.Node, req checkin.CheckInRequest, force bool, now time.Time) (checkin.CheckInResponse, error) {
	certname := node.Certname
	var groups []string
	if s.cfg.Groups != nil {
		groups = s.cfg.Groups(certname)
	}
	runs, err := s.cfg.Store.ListRuns(ctx, muster.RunFilter{Node: certname,
		States: []muster.RunState{muster.RunPending, muster.RunRunning}, Limit: 10})
	if err != nil {
		return checkin.CheckInResponse{}, err
	}
	waiting, running := false, false
	for _, r := range runs {
		switch {
		case r.State == muster.RunRunning:
			running = true
		case r.Kind == muster.JobPull && !r.RunAt.After(now):
			waiting = true // asked for by an operator, or queued by a check-in
		}
	}
	lastRun := node.LastRunAt
	if lastRun.IsZero() {
		lastRun = req.LastRun
	}
	d := s.cfg.Scheduler.Decide(pull.CheckIn{Node: certname, Groups: groups, Now: now, LastRun: lastRun,
		LastFacts: node.FactsAt, Running: running, Force: force || waiting})
	resp := checkin.CheckInResponse{Version: checkin.Version, Next: d.NextCheckIn, Watch: d.Watch, UploadFacts: d.UploadFacts}
	if cert, err := x509.ParseCertificate(node.Cert); err == nil {
		resp.CertRenewAt = pki.RenewAt(cert)
	}
	if !d.RunNow {
		return resp, nil
	}
	release := func() { s.cfg.Scheduler.Finish(now, d.Backend) }
	if !waiting {
		if d.Run == nil { // Decide does not run such a node unless forced
			release()
			return resp, nil
		}
		spec := muster.JobSpec{Command: d.Run.Command, Task: d.Run.Task, Params: d.Run.Params, SuccessCodes: d.Run.SuccessCodes, Env: d.Env}
		raw, err := json.Marshal(spec)
		if err != nil {
			release()
			return resp, err
		}
		if _, err := s.cfg.Store.SubmitJob(ctx, muster.Job{Kind: muster.JobPull, Spec: raw, Targets: []string{certname},
			Timeout: d.Run.Timeout, CreatedBy: "pull:" + d.Reason}); err != nil {
			release()
			return resp, err
		}
	}
	timeout := time.Duration(0)
	if d.Run != nil {
		timeout = d.Run.Timeout
	}
	lease := timeout
	if lease <= 0 {
		lease = time.Hour
	}
	// A fresh clock: the run just queued is ready as of the store's now.
	run, ok, err := s.cfg.Store.ClaimNodeRun(ctx, muster.NodeClaim{Certname: certname, Owner: owner(certname),
		LeaseTTL: lease + s.cfg.LeaseSlack, Now: s.now(), Backend: d.Backend, Limit: d.Limit})
	if errors.Is(err, muster.ErrBackendFull) {
		// Another server took the backend's last place since this one
		// counted: the run waits for the node's next check-in.
		resp.Next = now.Add(s.cfg.Scheduler.Refuse(now, d.Backend))
		s.log.Debug("pull run refused: backend full across servers", "certname", certname, "err", err)
		return resp, nil
	}
	if err != nil || !ok {
		release()
		return resp, err
	}
	var spec muster.JobSpec
	if err := json.Unmarshal(run.Spec, &spec); err != nil {
		release()
		return resp, fmt.Errorf("run %d: %w", run.ID, err)
	}
	command, task, params, codes := spec.Command, spec.Task, spec.Params, spec.SuccessCodes
	if run.Timeout > 0 { // the job's own (a pulled command job's --timeout)
		timeout = run.Timeout
	}
	if command == "" && task == "" { // asked for by an operator: the configured run
		if d.Run == nil {
			release()
			return resp, s.refuseUnconfigured(ctx, run)
		}
		command, task, params, codes = d.Run.Command, d.Run.Task, d.Run.Params, d.Run.SuccessCodes
	}
	if len(codes) == 0 {
		codes = []int{0}
	}
	env := maps.Clone(d.Env)
	if env == nil {
		env = map[string]string{}
	}
	maps.Copy(env, spec.Env)
	env["MUSTER_RUN_ID"] = fmt.Sprint(run.ID)
	env["MUSTER_NODE"] = certname
	s.mu.Lock()
	if s.out == nil {
		s.out = map[int64]handedOut{}
	}
	s.out[run.ID] = handedOut{backend: d.Backend, codes: codes}
	s.mu.Unlock()
	resp.Run = &checkin.Run{RunID: run.ID, Attempt: run.Attempt, Command: command, Task: task, Params: params, SuccessCodes: codes, Env: env,
		Timeout: timeout, Backend: d.Backend, LeaseExpires: run.LeaseExpires}
	if err := s.cfg.Store.NoteNodeRun(ctx, certname, run.ID, now); err != nil {
		s.log.Warn("recording the node's run", "certname", certname, "err", err)
	}
	s.publish(run.JobID)
	s.log.Info("pull run handed out", "certname", certname, "run", run.ID, "reason", d.Reason, "backend", d.Backend)
	return resp, nil
}

// successCodes are a run's success codes when this server did not hand it
// out (it restarted since, or another server did): the job's own, else,
// for a run asked for without a command (muster node run), those of the
// node's runs entry, else 0.
func (s *Server) successCodes(run muster.Run) []int {
	var spec muster.JobSpec
	_ = json.Unmarshal(run.Spec, &spec)
	codes := spec.SuccessCodes
	if len(codes) == 0 && spec.Command == "" && spec.Task == "" {
		var groups []string
		if s.cfg.Groups != nil {
			groups = s.cfg.Groups(run.Node)
		}
		if r := s.cfg.Scheduler.RunFor(run.Node, groups); r != nil {
			codes = r.SuccessCodes
		}
	}
	if len(codes) == 0 {
		codes = []int{0}
	}
	return codes
}

// refuseUnconfigured ends a run that an operator asked of a node that
// pull.yaml gives nothing to run: failed, saying so, rather than left
// waiting for ever.
func (s *Server) refuseUnconfigured(ctx context.Context, run muster.Run) error {
	e := muster.Errorf(muster.KindCommand, "no pull run is configured for node %s: add a runs entry matching it to pull.yaml, "+
		"or give the job a command (muster job submit command CMD --pull)", run.Node)
	res := muster.Result{Target: run.Node, Action: string(muster.JobPull), Object: "pull run", Error: e}
	raw, err := res.MarshalJSON()
	if err != nil {
		return err
	}
	out, err := s.cfg.Store.CompleteRuns(ctx, []muster.CompleteParams{{RunID: run.ID, Server: owner(run.Node),
		Attempt: run.Attempt, Outcome: muster.OutcomeFailed, Error: e.Kind + ": " + e.Msg, Result: raw}})
	if err == nil {
		err = out[0].Err
	}
	s.log.Warn("pull run refused: nothing configured for the node", "certname", run.Node, "run", run.ID)
	s.publish(run.JobID)
	return err
}

func (s *Server) publish(job int64) {
	if s.cfg.Events != nil {
		s.cfg.Events.Publish(job)
	}
}

// handleFacts stores the node's facts (the caller's own: the node is its
// certificate's certname, never a payload's).
func (s *Server) handleFacts(w http.ResponseWriter, r *http.Request, certname string) error {
	var up checkin.FactsUpload
	if err := decode(r, &up); err != nil {
		return err
	}
	if err := up.Validate(); err != nil {
		return errorf(http.StatusBadRequest, "invalid", "%v", err)
	}
	s.cfg.Scheduler.DropFacts(up.Facts)
	raw, err := json.Marshal(up.Facts)
	if err != nil {
		return err
	}
	now := s.now()
	var before map[string]any // for the fact-change event (change-driven jobs' facts_used)
	if s.cfg.Events != nil {
		if prev, _, err := s.cfg.Store.NodeFacts(r.Context(), certname); err == nil {
			_ = json.Unmarshal(prev, &before)
		}
	}
	if err := s.cfg.Store.SetNodeFacts(r.Context(), certname, raw, now); errors.Is(err, muster.ErrNotFound) {
		return errorf(http.StatusForbidden, "forbidden", "node %s is not signed", certname)
	} else if err != nil {
		return err
	}
	if s.cfg.Events != nil {
		if changed := muster.ChangedFacts(before, up.Facts); len(changed) > 0 {
			s.cfg.Events.Facts().Publish(events.FactChange{Node: certname, Facts: changed, Source: "agent"})
		}
	}
	s.log.Debug("facts stored", "certname", certname, "bytes", len(raw))
	writeJSON(w, http.StatusOK, checkin.FactsResponse{Version: checkin.Version, StoredAt: now})
	return nil
}

// handleReport records a run's end. The run must be the caller's own; a
// report repeated after its run ended is answered with the run's state,
// and one for an attempt the server took back is "stale".
func (s *Server) handleReport(w http.ResponseWriter, r *http.Request, certname string) error {
	var rep checkin.Report
	if err := decode(r, &rep); err != nil {
		return err
	}
	if err := rep.Validate(); err != nil {
		return errorf(http.StatusBadRequest, "invalid", "%v", err)
	}
	ctx := r.Context()
	run, err := s.cfg.Store.GetRun(ctx, rep.RunID)
	if errors.Is(err, muster.ErrNotFound) || err == nil && run.Node != certname {
		s.log.Warn("report for a run of another node refused", "certname", certname, "run", rep.RunID)
		return errorf(http.StatusForbidden, "forbidden", "run %d is not a run of %s", rep.RunID, certname)
	} else if err != nil {
		return err
	}
	s.mu.Lock()
	out, known := s.out[rep.RunID]
	s.mu.Unlock()
	if !known { // handed out before this server started: the run says, or the configuration
		out.codes = s.successCodes(run)
	}
	now := s.now()
	res := muster.Result{Target: certname, Action: string(muster.JobPull), Object: "pull run",
		Value: map[string]any{"stdout": rep.Stdout, "stderr": rep.Stderr, "exit_code": rep.ExitCode,
			"duration_ms": rep.Duration.Milliseconds(), "started": rep.Started, "changed": rep.Changed}}
	outcome := muster.OutcomeSucceeded
	switch {
	case rep.Error != "":
		outcome = muster.OutcomeFailed
		res.Error = muster.Errorf(muster.KindCommand, "pull run on %s: %s", certname, rep.Error)
	case !slices.Contains(out.codes, rep.ExitCode):
		outcome = muster.OutcomeFailed
		res.Error = muster.Errorf(muster.KindCommand, "pull run on %s exited with %d (success codes %v)", certname, rep.ExitCode, out.codes).
			WithDetail("exit_code", rep.ExitCode)
	}
	raw, err := res.MarshalJSON()
	if err != nil {
		return err
	}
	p := muster.CompleteParams{RunID: rep.RunID, Server: owner(certname), Attempt: rep.Attempt, Outcome: outcome,
		ExitCode: rep.ExitCode, Result: raw}
	if res.Error != nil {
		p.Error = res.Error.Kind + ": " + res.Error.Msg
	}
	results, err := s.cfg.Store.CompleteRuns(ctx, []muster.CompleteParams{p})
	if err != nil {
		return err
	}
	state := string(outcome)
	if err := results[0].Err; err != nil {
		if !errors.Is(err, muster.ErrLeaseLost) {
			return err
		}
		// Repeated, or taken back: the run as it stands says which.
		again, gerr := s.cfg.Store.GetRun(ctx, rep.RunID)
		if gerr != nil {
			return gerr
		}
		if again.Attempt == rep.Attempt && again.State.Final() {
			state = string(again.State)
		} else {
			state = "stale"
		}
		writeJSON(w, http.StatusOK, checkin.ReportResponse{Version: checkin.Version, State: state})
		return nil
	}
	s.mu.Lock()
	delete(s.out, rep.RunID)
	s.mu.Unlock()
	if known {
		s.cfg.Scheduler.Finish(now, out.backend)
	}
	if err := s.cfg.Store.NoteNodeRun(ctx, certname, rep.RunID, now); err != nil {
		s.log.Warn("recording the node's run", "certname", certname, "err", err)
	}
	s.publish(run.JobID)
	s.log.Info("pull run reported", "certname", certname, "run", rep.RunID, "exit_code", rep.ExitCode, "outcome", outcome)
	writeJSON(w, http.StatusOK, checkin.ReportResponse{Version: checkin.Version, State: state})
	return nil
}
