package api

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/muster-run/muster"
)

// TestEventsToCompletion follows a job while the test plays the
// dispatcher through the store, and checks that every run's end arrives
// with its result, and that the stream ends with the job.
func TestEventsToCompletion(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.EventInterval = 10 * time.Millisecond })
	sub := e.submit(commandJob("web1,web2,db1", "echo hi"))
	id := sub.Job.ID
	ctx, cancel := context.WithTimeout(e.ctx, 60*time.Second) // a safety net, not an assertion
	defer cancel()
	started := make(chan struct{})
	var events []Event
	done := make(chan error, 1)
	go func() {
		first := true
		done <- e.client(muster.RoleViewer).Events(ctx, id, func(ev Event) error {
			events = append(events, ev)
			if first && ev.Type == EventJob {
				first = false
				close(started)
			}
			return nil
		})
	}()
	select {
	case <-started:
	case err := <-done:
		t.Fatalf("stream ended before it started: %v", err)
	}
	// Claim every run, then finish them: db1 fails, the others succeed.
	runs, err := e.store.ClaimRuns(e.ctx, muster.ClaimParams{Server: "s", Limit: 10, LeaseTTL: time.Minute})
	if err != nil || len(runs) != 3 {
		t.Fatalf("claim: %v %v", runs, err)
	}
	var ps []muster.CompleteParams
	for _, r := range runs {
		outcome := muster.OutcomeSucceeded
		if r.Node == "db1" {
			outcome = muster.OutcomeFailed
		}
		ps = append(ps, completion(r, outcome))
	}
	res, err := e.store.CompleteRuns(e.ctx, ps)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res {
		if r.Err != nil {
			t.Fatal(r.Err)
		}
	}
	if err := <-done; err != nil {
		t.Fatalf("Events: %v", err)
	}
	last := events[len(events)-1]
	if last.Type != EventEnd || last.Job == nil || last.Job.State != muster.JobFailed || !last.Job.Finished ||
		last.Job.Counts[muster.RunSucceeded] != 2 || last.Job.Counts[muster.RunFailed] != 1 {
		t.Fatalf("last event %+v", last)
	}
	final := map[string]RunView{}
	for _, ev := range events[:len(events)-1] {
		if ev.Type == EventEnd {
			t.Fatalf("end event before the last: %+v", ev)
		}
		if ev.Type == EventRun && ev.Run.State.Final() {
			final[ev.Run.Target] = *ev.Run
		}
		if ev.Time.IsZero() {
			t.Errorf("event without a time: %+v", ev)
		}
	}
	if len(final) != 3 {
		t.Fatalf("final run events: %+v", final)
	}
	for node, rv := range final {
		want := muster.StatusSuccess
		if node == "db1" {
			want = muster.StatusFailure
		}
		r := rv.Result()
		if rv.Status != want || r.Status() != want || r.Target != node || r.Action != "command" ||
			r.Value["stdout"] != "hi from "+node+"\n" || rv.Attempt != 1 || rv.FinishedAt.IsZero() {
			t.Errorf("%s: %+v / result %+v", node, rv, r)
		}
		if node == "db1" && (r.Error == nil || r.Error.Kind != muster.KindCommand || rv.ExitCode != 3) {
			t.Errorf("db1 error: %+v", r.Error)
		}
	}
	// The runs endpoint agrees, and rebuilds Bolt's JSON items.
	rs, err := e.client(muster.RoleViewer).Runs(e.ctx, id, RunsOptions{})
	if err != nil || len(rs) != 3 {
		t.Fatalf("runs: %+v %v", rs, err)
	}
	b, _ := json.Marshal(rs[0].Result())
	var item map[string]any
	_ = json.Unmarshal(b, &item)
	for _, k := range []string{"target", "action", "object", "status", "value"} {
		if _, ok := item[k]; !ok {
			t.Errorf("bolt item lacks %s: %s", k, b)
		}
	}
	failed, err := e.client(muster.RoleViewer).Runs(e.ctx, id, RunsOptions{States: []muster.RunState{muster.RunFailed}})
	if err != nil || len(failed) != 1 || failed[0].Target != "db1" {
		t.Fatalf("failed runs: %+v %v", failed, err)
	}
}

// TestEventsStopWhenClientGoes checks that a stream of an unfinished job
// ends when the client cancels, and when the server closes.
func TestEventsStop(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.EventInterval = 10 * time.Millisecond })
	id := e.submit(commandJob("web1", "sleep 1000")).Job.ID
	ctx, cancel := context.WithCancel(e.ctx)
	n := 0
	err := e.client(muster.RoleViewer).Events(ctx, id, func(ev Event) error {
		if n++; ev.Type == EventJob {
			cancel()
		}
		return nil
	})
	if !errors.Is(err, context.Canceled) || n < 2 {
		t.Fatalf("after cancel: %v (%d events)", err, n)
	}
	stop := errors.New("stop")
	if err := e.client(muster.RoleViewer).Events(e.ctx, id, func(Event) error { return stop }); err != stop {
		t.Fatalf("callback error: %v", err)
	}
	// Server.Close ends open streams.
	err = e.client(muster.RoleViewer).Events(e.ctx, id, func(ev Event) error {
		if ev.Type == EventJob {
			e.srv.Close()
		}
		return nil
	})
	if err == nil || !strings.Contains(err.Error(), "closed the event stream") {
		t.Fatalf("after Server.Close: %v", err)
	}
}

// TestClientRoundTrip calls every client method once.
func TestClientRoundTrip(t *testing.T) {
	e := newEnv(t)
	op, admin, viewer := e.client(muster.RoleOperator), e.client(muster.RoleAdmin), e.client(muster.RoleViewer)
	anon, _ := NewClient(e.hs.URL+"/", "")
	if err := anon.Health(e.ctx); err != nil {
		t.Fatalf("Health: %v", err)
	}
	sub, err := op.Submit(e.ctx, exampleSubmit())
	if err != nil || len(sub.Runs) != 3 {
		t.Fatalf("Submit: %+v %v", sub, err)
	}
	id := sub.Job.ID
	if j, err := viewer.Job(e.ctx, id); err != nil || j.ID != id || len(j.Targets) != 3 {
		t.Fatalf("Job: %+v %v", j, err)
	}
	if l, err := viewer.ListJobs(e.ctx, ListJobsOptions{State: muster.JobPending}); err != nil || len(l.Jobs) != 1 {
		t.Fatalf("ListJobs: %+v %v", l, err)
	}
	if rs, err := viewer.Runs(e.ctx, id, RunsOptions{Node: "web2"}); err != nil || len(rs) != 1 || rs[0].State != muster.RunPending {
		t.Fatalf("Runs: %+v %v", rs, err)
	}
	if j, err := op.Bump(e.ctx, id); err != nil || j.ID != id {
		t.Fatalf("Bump: %+v %v", j, err)
	}
	if st, err := viewer.Stats(e.ctx); err != nil || st.Counts[muster.RunPending] != 3 || st.Ready != 3 ||
		len(st.Counts) != len(muster.RunStates) {
		t.Fatalf("Stats: %+v %v", st, err)
	}
	if c, err := op.Cancel(e.ctx, id); err != nil || c.Cancelled != 3 {
		t.Fatalf("Cancel: %+v %v", c, err)
	}
	var evs []Event
	if err := viewer.Events(e.ctx, id, func(ev Event) error { evs = append(evs, ev); return nil }); err != nil ||
		evs[len(evs)-1].Type != EventEnd {
		t.Fatalf("Events: %+v %v", evs, err)
	}
	tok, err := admin.CreateToken(e.ctx, "round-trip", muster.RoleViewer)
	if err != nil || !strings.HasPrefix(tok.Secret, TokenPrefix) {
		t.Fatalf("CreateToken: %+v %v", tok, err)
	}
	if ts, err := admin.ListTokens(e.ctx); err != nil || len(ts) != 4 {
		t.Fatalf("ListTokens: %+v %v", ts, err)
	}
	if tv, err := admin.RevokeToken(e.ctx, "round-trip"); err != nil || !tv.Revoked {
		t.Fatalf("RevokeToken: %+v %v", tv, err)
	}
	if a, err := admin.Audit(e.ctx, AuditOptions{Limit: 10}); err != nil || len(a.Entries) != 5 {
		t.Fatalf("Audit: %+v %v", a, err)
	}
	if doc, err := viewer.OpenAPI(e.ctx); err != nil || !json.Valid(doc) {
		t.Fatalf("OpenAPI: %v", err)
	}
	if viewer.BaseURL() != e.hs.URL || anon.BaseURL() != e.hs.URL {
		t.Errorf("BaseURL %q %q", viewer.BaseURL(), anon.BaseURL())
	}
}

func TestClientErrors(t *testing.T) {
	e := newEnv(t)
	op := e.client(muster.RoleOperator)
	_, err := op.Submit(e.ctx, commandJob("web9*", "x"))
	if err == nil || err.Error() != `server refused the job: targets: no targets match "web9*" (400)` {
		t.Fatalf("submit error reads %q", err)
	}
	if !errors.Is(err, muster.ErrInvalid) {
		t.Errorf("a 400 is not ErrInvalid")
	}
	_, err = op.Job(e.ctx, 4242)
	var ae *APIError
	if !errors.As(err, &ae) || ae.Status != 404 || ae.Code != CodeNotFound || !errors.Is(err, muster.ErrNotFound) ||
		err.Error() != "get job 4242: no job 4242 (404)" {
		t.Fatalf("404 error: %#v %q", err, err)
	}
	_, err = e.client(muster.RoleViewer).Submit(e.ctx, exampleSubmit())
	if !isStatus(err, 403) || !strings.Contains(err.Error(), "needs the operator role") {
		t.Fatalf("403 error: %v", err)
	}
	bad, _ := NewClient(e.hs.URL, "mst_nope")
	if _, err := bad.Stats(e.ctx); !isStatus(err, 401) || !strings.Contains(err.Error(), "invalid or revoked API token") {
		t.Fatalf("401 error: %v", err)
	}
	// A server that is not running.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := "http://" + ln.Addr().String()
	ln.Close()
	down, _ := NewClient(addr, "x")
	_, err = down.Stats(e.ctx)
	if err == nil || !strings.Contains(err.Error(), addr) || !strings.Contains(err.Error(), "muster server") ||
		!strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("connection refused reads %q", err)
	}
	// No server answered, so none refused the job.
	if _, err = down.Submit(e.ctx, exampleSubmit()); err == nil || strings.Contains(err.Error(), "refused the job") ||
		!strings.HasPrefix(err.Error(), "submitting the job: cannot connect") {
		t.Fatalf("submit to a stopped server reads %q", err)
	}
	// A proxy's HTML error page.
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusBadGateway)
		_, _ = w.Write([]byte("<html>bad gateway</html>"))
	}))
	defer proxy.Close()
	pc, _ := NewClient(proxy.URL, "x")
	if _, err := pc.Stats(e.ctx); !isStatus(err, 502) || err.Error() != "get queue stats: Bad Gateway (502)" {
		t.Fatalf("proxy error: %v", err)
	}
	for _, u := range []string{"", "ftp://x", "http://", "http://u:p@host", "localhost:7420"} {
		if _, err := NewClient(u, ""); err == nil {
			t.Errorf("NewClient(%q) accepted", u)
		}
	}
}

func TestClientTLS(t *testing.T) {
	e := newEnv(t)
	ts := httptest.NewTLSServer(e.srv)
	defer ts.Close()
	// Without the CA the certificate is refused; with it the call works.
	plain, _ := NewClient(ts.URL, e.tokens[muster.RoleViewer])
	if _, err := plain.Stats(e.ctx); err == nil {
		t.Fatal("an unknown CA was trusted")
	}
	ca := filepath.Join(t.TempDir(), "ca.pem")
	writePEM(t, ca, ts.Certificate().Raw)
	c, err := NewClient(ts.URL, e.tokens[muster.RoleViewer], WithCAFile(ca))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Stats(e.ctx); err != nil {
		t.Fatalf("with the CA file: %v", err)
	}
	// WithHTTPClient and WithTransport.
	c2, _ := NewClient(ts.URL, e.tokens[muster.RoleViewer], WithHTTPClient(ts.Client()))
	if _, err := c2.Stats(e.ctx); err != nil {
		t.Fatalf("WithHTTPClient: %v", err)
	}
	c3, _ := NewClient(ts.URL, e.tokens[muster.RoleViewer], WithTransport(ts.Client().Transport))
	if _, err := c3.Stats(e.ctx); err != nil {
		t.Fatalf("WithTransport: %v", err)
	}
	if _, err := NewClient(ts.URL, "", WithCAFile(filepath.Join(t.TempDir(), "missing.pem"))); err == nil {
		t.Error("a missing CA file was accepted")
	}
}

func writePEM(t *testing.T, path string, der []byte) {
	t.Helper()
	b := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestEventsRecurring: a recurring job's stream shows each run's end and
// the next run, and ends only once the job is cancelled.
func TestEventsRecurring(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.EventInterval = 5 * time.Millisecond })
	req := commandJob("web1", "backup")
	req.Every = Duration(time.Hour)
	id := e.submit(req).Job.ID
	ctx, cancel := context.WithTimeout(e.ctx, 60*time.Second) // a safety net, not an assertion
	defer cancel()
	type seen struct {
		id    int64
		state muster.RunState
	}
	var runs []seen
	next, scheduled := make(chan struct{}, 1), make(chan struct{})
	done := make(chan error, 1)
	var last Event
	sawScheduled := false
	go func() {
		done <- e.client(muster.RoleViewer).Events(ctx, id, func(ev Event) error {
			last = ev
			if ev.Type == EventRun {
				runs = append(runs, seen{ev.Run.ID, ev.Run.State})
				if ev.Run.State == muster.RunScheduled && !sawScheduled {
					sawScheduled = true
					close(scheduled)
				}
			}
			if ev.Type == EventJob {
				select {
				case next <- struct{}{}:
				default:
				}
			}
			return nil
		})
	}()
	<-next
	claimed, err := e.store.ClaimRuns(e.ctx, muster.ClaimParams{Server: "s", Limit: 1, LeaseTTL: time.Minute})
	if err != nil || len(claimed) != 1 {
		t.Fatalf("claim: %v %v", claimed, err)
	}
	if _, err := muster.CompleteRun(e.ctx, e.store, completion(claimed[0], muster.OutcomeSucceeded)); err != nil {
		t.Fatal(err)
	}
	// Wait until the stream has shown the next, scheduled run.
	select {
	case <-scheduled:
	case err := <-done:
		t.Fatalf("the stream of a recurring job ended: %v", err)
	}
	if _, err := e.client(muster.RoleOperator).Cancel(e.ctx, id); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if last.Type != EventEnd || last.Job.State != muster.JobCancelled {
		t.Fatalf("last event %+v", last)
	}
	var first, second []muster.RunState
	for _, r := range runs {
		if r.id == claimed[0].ID {
			first = append(first, r.state)
		} else {
			second = append(second, r.state)
		}
	}
	if len(first) == 0 || first[len(first)-1] != muster.RunSucceeded {
		t.Errorf("first run's events: %v", first)
	}
	if len(second) == 0 || second[len(second)-1] != muster.RunCancelled {
		t.Errorf("second run's events: %v", second)
	}
}
