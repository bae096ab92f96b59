package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/muster-run/muster"
)

func TestSubmitBadPayloads(t *testing.T) {
	e := newEnv(t)
	bare := newEnv(t, noSealer)
	big := `{"kind":"command","targets":"web1","spec":{"command":"` + strings.Repeat("x", MaxBodyBytes) + `"}}`
	tests := []struct {
		name   string
		env    *env
		ctype  string
		body   io.Reader
		status int
		field  string // the message starts with it
		code   string
	}{
		{"unknown field", e, "", strings.NewReader(`{"kind":"command","targets":"web1","spec":{"command":"x"},"colour":"red"}`), 400, "colour", CodeInvalid},
		{"case-mismatched field", e, "", strings.NewReader(`{"Kind":"command","targets":"web1","spec":{"command":"x"}}`), 400, "Kind", CodeInvalid},
		{"unknown spec field", e, "", strings.NewReader(`{"kind":"command","targets":"web1","spec":{"command":"x","shell":"zsh"}}`), 400, "spec.shell", CodeInvalid},
		{"wrong type", e, "", strings.NewReader(`{"kind":"command","targets":"web1","spec":{"command":"x"},"priority":"high"}`), 400, "priority", CodeInvalid},
		{"wrong spec type", e, "", strings.NewReader(`{"kind":"command","targets":"web1","spec":{"command":5}}`), 400, "spec.command", CodeInvalid},
		{"spec not an object", e, "", strings.NewReader(`{"kind":"command","targets":"web1","spec":"ls"}`), 400, "spec", CodeInvalid},
		{"bad duration", e, "", strings.NewReader(`{"kind":"command","targets":"web1","spec":{"command":"x"},"every":"5 minutes"}`), 400, "every", CodeInvalid},
		{"every 0s", e, "", strings.NewReader(`{"kind":"command","targets":"web1","spec":{"command":"x"},"every":"0s"}`), 400, `every: "0s" is no interval`, CodeInvalid},
		{"timeout 1ns", e, "", strings.NewReader(`{"kind":"command","targets":"web1","spec":{"command":"x"},"timeout":"1ns"}`), 400, `timeout: "1ns" is too short`, CodeInvalid},
		{"duration as number", e, "", strings.NewReader(`{"kind":"command","targets":"web1","spec":{"command":"x"},"timeout":30}`), 400, "timeout", CodeInvalid},
		{"negative timeout", e, "", strings.NewReader(`{"kind":"command","targets":"web1","spec":{"command":"x"},"timeout":"-1s"}`), 400, "timeout", CodeInvalid},
		{"bad time", e, "", strings.NewReader(`{"kind":"command","targets":"web1","spec":{"command":"x"},"run_at":"tomorrow"}`), 400, "run_at", CodeInvalid},
		{"bad kind", e, "", strings.NewReader(`{"kind":"shell","targets":"web1","spec":{"command":"x"}}`), 400, "kind", CodeInvalid},
		{"pull kind", e, "", strings.NewReader(`{"kind":"pull","targets":"web1","spec":{}}`), 400, "kind: pull runs are for signed nodes", CodeInvalid},
		{"missing kind", e, "", strings.NewReader(`{"targets":"web1","spec":{"command":"x"}}`), 400, "kind", CodeInvalid},
		{"empty targets", e, "", strings.NewReader(`{"kind":"command","targets":"","spec":{"command":"x"}}`), 400, "targets", CodeInvalid},
		{"empty target list", e, "", strings.NewReader(`{"kind":"command","targets":[],"spec":{"command":"x"}}`), 400, "targets", CodeInvalid},
		{"target not a string", e, "", strings.NewReader(`{"kind":"command","targets":["web1",2],"spec":{"command":"x"}}`), 400, "targets[1]", CodeInvalid},
		{"targets an object", e, "", strings.NewReader(`{"kind":"command","targets":{"web1":true},"spec":{"command":"x"}}`), 400, "targets", CodeInvalid},
		{"unknown target", e, "", strings.NewReader(`{"kind":"command","targets":"mail*","spec":{"command":"x"}}`), 400, `targets: no targets match "mail*"`, CodeInvalid},
		{"spec of another kind", e, "", strings.NewReader(`{"kind":"command","targets":"web1","spec":{"command":"x","task":"y"}}`), 400, "spec", CodeInvalid},
		{"empty command", e, "", strings.NewReader(`{"kind":"command","targets":"web1","spec":{"command":" "}}`), 400, "spec", CodeInvalid},
		{"sealed by the client", e, "", strings.NewReader(`{"kind":"command","targets":"web1","spec":{"command":"x","sealed":"abc"}}`), 400, "spec", CodeInvalid},
		{"unknown task (Prepare)", e, "", strings.NewReader(`{"kind":"task","targets":"web1","spec":{"task":"nope"}}`), 400, `spec: task "nope" not found`, CodeInvalid},
		{"retries out of range", e, "", strings.NewReader(`{"kind":"command","targets":"web1","spec":{"command":"x"},"retries":-1}`), 400, "retries", CodeInvalid},
		{"recurring and continuous", e, "", strings.NewReader(`{"kind":"command","targets":"web1","spec":{"command":"x"},"every":"1m","continuous":true}`), 400, "continuous", CodeInvalid},
		{"bad lease policy", e, "", strings.NewReader(`{"kind":"command","targets":"web1","spec":{"command":"x"},"on_lease_expiry":"ignore"}`), 400, "on_lease_expiry", CodeInvalid},
		{"secrets without a sealer", bare, "", strings.NewReader(`{"kind":"command","targets":"web1","spec":{"command":"sudo x","secrets":{"sudo_password":"pw"}}}`), 400, "spec.secrets", CodeInvalid},
		{"sensitive param without a sealer", bare, "", strings.NewReader(`{"kind":"task","targets":"web1","spec":{"task":"mod::secret","params":{"password":"pw"}}}`), 400, "spec.secrets", CodeInvalid},
		{"not JSON", e, "", strings.NewReader(`kind=command`), 400, "body", CodeInvalid},
		{"empty body", e, "", strings.NewReader(``), 400, "body", CodeInvalid},
		{"trailing data", e, "", strings.NewReader(`{"kind":"command","targets":"web1","spec":{"command":"x"}} {}`), 400, "body", CodeInvalid},
		{"array body", e, "", strings.NewReader(`[1]`), 400, "body", CodeInvalid},
		{"body too large", e, "", strings.NewReader(big), 413, "body", CodeTooLarge},
		{"body too large, chunked", e, "", io.MultiReader(strings.NewReader(big)), 413, "body", CodeTooLarge},
		{"wrong content type", e, "text/plain", strings.NewReader(`{}`), 415, "content type", CodeUnsupportedMedia},
		{"form content type", e, "application/x-www-form-urlencoded", strings.NewReader(`kind=command`), 415, "content type", CodeUnsupportedMedia},
		{"no content type", e, "-", strings.NewReader(`{}`), 415, "content type", CodeUnsupportedMedia},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ct := tc.ctype
			switch ct {
			case "":
				ct = "application/json; charset=utf-8"
			case "-":
				ct = ""
			}
			r := tc.env.do("POST", "/api/v1/jobs", tc.env.tokens[muster.RoleOperator], ct, tc.body)
			b := errorOf(t, r)
			if r.status != tc.status || b.Error.Code != tc.code || !strings.HasPrefix(b.Error.Message, tc.field) {
				t.Fatalf("got %d %s %q, want %d %s %q...", r.status, b.Error.Code, b.Error.Message, tc.status, tc.code, tc.field)
			}
		})
	}
	if jobs, _ := e.store.ListJobs(e.ctx, muster.JobFilter{}); len(jobs) != 0 {
		t.Errorf("bad payloads queued %d jobs", len(jobs))
	}
}

func TestSubmit(t *testing.T) {
	e := newEnv(t)
	req := exampleSubmit()
	req.Targets = Targets{Nodes: []string{"web*", "db1", "web2"}}
	out := e.submit(req)
	j := out.Job
	if j.ID == 0 || j.Kind != muster.JobCommand || j.State != muster.JobPending || j.CreatedBy != "operator-token" ||
		j.Priority != 5 || j.Retries != 2 || j.Timeout != Duration(60e9) || j.OnLeaseExpiry != muster.LeaseFail {
		t.Fatalf("job %+v", j)
	}
	if got := strings.Join(j.Targets, ","); got != "web1,web2,web3,db1" {
		t.Fatalf("targets resolved to %s", got)
	}
	if len(out.Runs) != 4 || len(out.Coalesced) != 0 || j.Counts[muster.RunPending] != 4 || j.Object != req.Spec.Command {
		t.Fatalf("submit answer %+v", out)
	}
	// The same spec again coalesces into the waiting runs.
	again := e.submit(SubmitRequest{Kind: req.Kind, Targets: Targets{Spec: "web1,db2"}, Spec: req.Spec,
		Priority: 5, Retries: 2, Timeout: Duration(60e9), OnLeaseExpiry: muster.LeaseFail})
	if strings.Join(again.Coalesced, ",") != "web1" || again.Runs["web1"] != out.Runs["web1"] {
		t.Fatalf("coalescing: %+v", again)
	}
	// A scheduled, recurring job.
	rec := commandJob("db*", "backup")
	rec.Every = Duration(3600e9)
	rec.RunAt = mustTime("2099-01-02T03:04:05Z")
	r := e.submit(rec)
	if r.Job.State != muster.JobScheduled || r.Job.Every != rec.Every || !r.Job.RunAt.Equal(rec.RunAt) || r.Job.Finished {
		t.Fatalf("recurring job %+v", r.Job)
	}
	// A script job's body is never shown.
	script := SubmitRequest{Kind: muster.JobScript, Targets: Targets{Spec: "web1"},
		Spec: muster.JobSpec{Script: "fix.sh", ScriptBody: []byte("#!/bin/sh\necho SCRIPT-BODY-MARKER\n"), Args: []string{"-v"}}}
	sr := e.doJSON("POST", "/api/v1/jobs", e.tokens[muster.RoleOperator], script)
	if sr.status != http.StatusCreated || strings.Contains(sr.body, "script_body") ||
		strings.Contains(sr.body, "SCRIPT-BODY-MARKER") || !strings.Contains(sr.body, "fix.sh") {
		t.Fatalf("script submit %d: %s", sr.status, sr.body)
	}
	if loc := sr.header.Get("Location"); !strings.HasPrefix(loc, "/api/v1/jobs/") {
		t.Errorf("Location %q", loc)
	}
}

func TestJobReads(t *testing.T) {
	e := newEnv(t)
	c := e.client(muster.RoleViewer)
	var ids []int64
	for i := range 5 {
		ids = append(ids, e.submit(commandJob("web1", fmt.Sprintf("echo %d", i))).Job.ID)
	}
	page, err := c.ListJobs(e.ctx, ListJobsOptions{Limit: 3})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Jobs) != 3 || page.Jobs[0].ID != ids[4] || page.NextBefore != ids[2] || page.Jobs[0].Targets != nil {
		t.Fatalf("first page %+v", page)
	}
	page2, err := c.ListJobs(e.ctx, ListJobsOptions{Limit: 3, Before: page.NextBefore})
	if err != nil || len(page2.Jobs) != 2 || page2.Jobs[1].ID != ids[0] || page2.NextBefore != 0 {
		t.Fatalf("second page %+v %v", page2, err)
	}
	if _, err := e.client(muster.RoleOperator).Cancel(e.ctx, ids[1]); err != nil {
		t.Fatal(err)
	}
	cancelled, err := c.ListJobs(e.ctx, ListJobsOptions{State: muster.JobCancelled})
	if err != nil || len(cancelled.Jobs) != 1 || cancelled.Jobs[0].ID != ids[1] || !cancelled.Jobs[0].Finished {
		t.Fatalf("cancelled jobs %+v %v", cancelled, err)
	}
	for _, tc := range []struct{ path, want string }{
		{"/api/v1/jobs?state=bogus", "state:"},
		{"/api/v1/jobs?limit=0", "limit:"},
		{"/api/v1/jobs?limit=x", "limit:"},
		{"/api/v1/jobs?before=-1", "before:"},
		{"/api/v1/jobs/abc", "id:"},
		{"/api/v1/jobs/1/runs?state=done", "state:"},
		{"/api/v1/audit?limit=5000", "limit:"},
	} {
		tok := e.tokens[muster.RoleAdmin]
		r := e.do("GET", tc.path, tok, "", nil)
		if r.status != 400 || !strings.HasPrefix(errorOf(t, r).Error.Message, tc.want) {
			t.Errorf("%s: %d %s", tc.path, r.status, r.body)
		}
	}
	// 404 and 405 are JSON errors too.
	for _, tc := range []struct {
		method, path string
		status       int
		code         string
	}{
		{"GET", "/api/v1/jobs/999999", 404, CodeNotFound},
		{"GET", "/api/v1/jobs/999999/runs", 404, CodeNotFound},
		{"POST", "/api/v1/jobs/999999/cancel", 404, CodeNotFound},
		{"GET", "/api/v1/nothing", 404, CodeNotFound},
		{"DELETE", "/api/v1/jobs/1", 405, CodeMethodNotAllowed},
		{"PUT", "/api/v1/tokens", 405, CodeMethodNotAllowed},
	} {
		r := e.do(tc.method, tc.path, e.tokens[muster.RoleAdmin], "", nil)
		if r.status != tc.status || errorOf(t, r).Error.Code != tc.code {
			t.Errorf("%s %s: %d %s", tc.method, tc.path, r.status, r.body)
		}
		if tc.status == 405 && r.header.Get("Allow") == "" {
			t.Errorf("%s %s: no Allow header", tc.method, tc.path)
		}
	}
}

func TestCancelAndBump(t *testing.T) {
	e := newEnv(t)
	op := e.client(muster.RoleOperator)
	a := e.submit(commandJob("web*", "a")).Job.ID
	b := e.submit(commandJob("web*", "b")).Job.ID
	bumped, err := op.Bump(e.ctx, b)
	if err != nil || bumped.ID != b {
		t.Fatalf("bump: %+v %v", bumped, err)
	}
	// Job b's runs now come first.
	runs, err := e.store.ClaimRuns(e.ctx, muster.ClaimParams{Server: "s1", Limit: 1, LeaseTTL: 60e9})
	if err != nil || len(runs) != 1 || runs[0].JobID != b {
		t.Fatalf("claim after bump: %+v %v", runs, err)
	}
	res, err := op.Cancel(e.ctx, b)
	if err != nil || res.Cancelled != 2 || res.Stopping != 1 || res.Job.State != muster.JobCancelled || res.Job.Finished {
		t.Fatalf("cancel: %+v %v", res, err)
	}
	// Its running run is asked to stop: its server finds it, stops it and
	// reports the failed attempt; the run ends cancelled, and then the
	// cancelled job has finished.
	if ids, err := e.store.CancelRequested(e.ctx, "s1"); err != nil || len(ids) != 1 || ids[0] != runs[0].ID {
		t.Fatalf("CancelRequested = %v, %v; want [%d]", ids, err, runs[0].ID)
	}
	if _, err := e.store.CompleteRuns(e.ctx, []muster.CompleteParams{completion(runs[0], muster.OutcomeFailed)}); err != nil {
		t.Fatal(err)
	}
	if j, err := op.Job(e.ctx, b); err != nil || !j.Finished || j.State != muster.JobCancelled || j.Counts[muster.RunCancelled] != 3 {
		t.Fatalf("cancelled job after its last run: %+v %v", j, err)
	}
	if _, err := op.Cancel(e.ctx, b); !isStatus(err, 409) {
		t.Fatalf("second cancel: %v", err)
	}
	if _, err := op.Bump(e.ctx, b); !isStatus(err, 409) {
		t.Fatalf("bump of a cancelled job: %v", err)
	}
	// Finish job a; then it can be neither cancelled nor bumped.
	e.finishAll(a, muster.OutcomeSucceeded)
	if _, err := op.Cancel(e.ctx, a); !isStatus(err, 409) {
		t.Fatalf("cancel of a finished job: %v", err)
	}
	if _, err := op.Bump(e.ctx, a); !isStatus(err, 409) {
		t.Fatalf("bump of a finished job: %v", err)
	}
}

// finishAll claims and completes every waiting run of job id.
func (e *env) finishAll(id int64, outcome muster.Outcome) {
	e.t.Helper()
	for range 100 {
		runs, err := e.store.ClaimRuns(e.ctx, muster.ClaimParams{Server: "s2", Limit: 100, LeaseTTL: 60e9})
		if err != nil {
			e.t.Fatal(err)
		}
		if len(runs) == 0 {
			break
		}
		var ps []muster.CompleteParams
		for _, r := range runs {
			ps = append(ps, completion(r, outcome))
		}
		if _, err := e.store.CompleteRuns(e.ctx, ps); err != nil {
			e.t.Fatal(err)
		}
	}
	j, err := e.store.GetJob(e.ctx, id)
	if err != nil || !jobFinished(j) {
		e.t.Fatalf("job %d not finished: %+v %v", id, j, err)
	}
}

// completion reports a run's end with a Bolt-shaped result.
func completion(r muster.Run, outcome muster.Outcome) muster.CompleteParams {
	res := &muster.Result{Target: r.Node, Action: string(r.Kind), Object: "echo hi",
		Value: map[string]any{"stdout": "hi from " + r.Node + "\n", "stderr": "", "exit_code": 0}}
	p := muster.CompleteParams{RunID: r.ID, Server: r.LeaseOwner, Attempt: r.Attempt, Outcome: outcome}
	if outcome == muster.OutcomeFailed {
		res.Value["exit_code"] = 3
		res.Error = muster.Errorf(muster.KindCommand, "the command failed with exit code 3")
		p.ExitCode, p.Error = 3, "the command failed with exit code 3"
	}
	p.Result, _ = json.Marshal(res)
	return p
}

func TestAuditTrail(t *testing.T) {
	e := newEnv(t)
	op, admin := e.client(muster.RoleOperator), e.client(muster.RoleAdmin)
	id := e.submit(commandJob("web1", "uptime")).Job.ID
	if _, err := op.Bump(e.ctx, id); err != nil {
		t.Fatal(err)
	}
	if _, err := op.Cancel(e.ctx, id); err != nil {
		t.Fatal(err)
	}
	tok, err := admin.CreateToken(e.ctx, "ci", muster.RoleViewer)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.RevokeToken(e.ctx, "ci"); err != nil {
		t.Fatal(err)
	}
	// A refused request is not a mutation.
	_, _ = op.Submit(e.ctx, commandJob("nomatch", "x"))
	list, err := admin.Audit(e.ctx, AuditOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := []struct{ actor, role, action, object string }{
		{"admin-token", "admin", "token.revoke", fmt.Sprintf("token/%d", tok.Token.ID)},
		{"admin-token", "admin", "token.create", fmt.Sprintf("token/%d", tok.Token.ID)},
		{"operator-token", "operator", "job.cancel", fmt.Sprintf("job/%d", id)},
		{"operator-token", "operator", "job.bump", fmt.Sprintf("job/%d", id)},
		{"operator-token", "operator", "job.submit", fmt.Sprintf("job/%d", id)},
	}
	if len(list.Entries) != len(want) {
		t.Fatalf("audit entries: %+v", list.Entries)
	}
	for i, w := range want {
		got := list.Entries[i]
		if got.Actor != w.actor || string(got.Role) != w.role || got.Action != w.action || got.Object != w.object ||
			!strings.HasPrefix(got.Remote, "127.0.0.1:") || got.At.IsZero() || !json.Valid(got.Detail) {
			t.Errorf("entry %d: %+v, want %+v", i, got, w)
		}
	}
	var detail map[string]any
	_ = json.Unmarshal(list.Entries[4].Detail, &detail)
	if detail["kind"] != "command" || detail["targets"] != "web1" || detail["target_count"] != float64(1) {
		t.Errorf("submit detail %v", detail)
	}
	// Filter by actor, and page.
	byAdmin, err := admin.Audit(e.ctx, AuditOptions{Actor: "admin-token"})
	if err != nil || len(byAdmin.Entries) != 2 {
		t.Fatalf("by actor: %+v %v", byAdmin, err)
	}
	p1, err := admin.Audit(e.ctx, AuditOptions{Limit: 2})
	if err != nil || len(p1.Entries) != 2 || p1.NextBefore == 0 {
		t.Fatalf("page 1: %+v %v", p1, err)
	}
	p2, err := admin.Audit(e.ctx, AuditOptions{Limit: 2, Before: p1.NextBefore})
	if err != nil || len(p2.Entries) != 2 || p2.Entries[0].ID >= p1.Entries[1].ID {
		t.Fatalf("page 2: %+v %v", p2, err)
	}
}

// TestSecretsNeverShown submits a sudo password and a sensitive task
// parameter, then looks for them in every answer, the audit trail, the
// stored spec and the log.
func TestSecretsNeverShown(t *testing.T) {
	e := newEnv(t)
	const sudoPW, paramPW = "hunter2-SUDO-pw", "correct-horse-PARAM"
	req := SubmitRequest{Kind: muster.JobTask, Targets: Targets{Spec: "web1,db1"}, Spec: muster.JobSpec{
		Task: "mod::secret", Params: map[string]any{"password": paramPW, "user": "deploy"}, RunAs: "root",
		Secrets: map[string]string{muster.SecretSudoPassword: sudoPW},
	}}
	var bodies []string
	sub := e.doJSON("POST", "/api/v1/jobs", e.tokens[muster.RoleOperator], req)
	if sub.status != http.StatusCreated {
		t.Fatalf("submit: %d %s", sub.status, sub.body)
	}
	bodies = append(bodies, sub.body)
	var out SubmitResponse
	_ = json.Unmarshal([]byte(sub.body), &out)
	id := out.Job.ID
	if v := out.Job.Spec.Secrets["sealed"]; v != "Sensitive [value redacted]" || out.Job.Spec.Sealed != "" ||
		out.Job.Spec.Params["user"] != "deploy" || out.Job.Spec.Params["password"] != nil {
		t.Fatalf("redacted spec: %+v", out.Job.Spec)
	}
	// The sealer got both secrets; the store holds only the sealed box.
	if len(e.sealer.sealed) != 1 || e.sealer.sealed[0][muster.SecretSudoPassword] != sudoPW ||
		e.sealer.sealed[0][muster.SecretParam("password")] != `"`+paramPW+`"` {
		t.Fatalf("sealed %v", e.sealer.sealed)
	}
	stored, err := e.store.GetJob(e.ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	spec, err := muster.DecodeJobSpec(stored.Spec)
	if err != nil || spec.Sealed != "SEALED-BOX-1" || len(spec.Secrets) != 0 {
		t.Fatalf("stored spec %s %v", stored.Spec, err)
	}
	e.finishAll(id, muster.OutcomeSucceeded)
	admin := e.tokens[muster.RoleAdmin]
	for _, p := range []string{
		fmt.Sprintf("/api/v1/jobs/%d", id), fmt.Sprintf("/api/v1/jobs/%d/runs", id),
		fmt.Sprintf("/api/v1/jobs/%d/events", id), "/api/v1/jobs", "/api/v1/audit", "/api/v1/stats", "/metrics",
	} {
		r := e.do("GET", p, admin, "", nil)
		if r.status != 200 {
			t.Fatalf("%s: %d %s", p, r.status, r.body)
		}
		bodies = append(bodies, r.body)
	}
	audit, _ := e.store.ListAudit(e.ctx, muster.AuditFilter{})
	for _, a := range audit {
		bodies = append(bodies, a.Detail)
	}
	bodies = append(bodies, e.logs.String(), string(stored.Spec))
	for i, b := range bodies {
		for _, secret := range []string{sudoPW, paramPW} {
			if strings.Contains(b, secret) {
				t.Errorf("body %d shows a secret: %s", i, b)
			}
		}
		if i > 0 && i < len(bodies)-1 && strings.Contains(b, "SEALED-BOX") {
			t.Errorf("body %d shows the sealed box: %s", i, b)
		}
	}
	// The audit detail names the secrets it withheld.
	if !bytes.Contains([]byte(audit[0].Detail), []byte("sudo_password")) {
		t.Errorf("audit detail %s", audit[0].Detail)
	}
}

func mustTime(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}
