package api

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/muster-run/muster"
)

func TestMetrics(t *testing.T) {
	e := newEnv(t)
	e.submit(commandJob("web*", "uptime"))
	m := e.srv.Metrics()
	m.ObserveStart(1500 * time.Millisecond)
	m.ObserveFinish(3*time.Second, "succeeded")
	m.ObserveFinish(time.Second, "failed")
	m.SetAdmission(false)
	e.do("GET", "/api/v1/stats", e.tokens[muster.RoleViewer], "", nil)
	r := e.do("GET", "/metrics", e.tokens[muster.RoleViewer], "", nil)
	if r.status != 200 || !strings.HasPrefix(r.header.Get("Content-Type"), "text/plain") {
		t.Fatalf("/metrics: %d %s", r.status, r.header.Get("Content-Type"))
	}
	for _, want := range []string{
		`muster_runs{state="pending"} 3`,
		`muster_runs{state="running"} 0`,
		`muster_runs{state="cancelled"} 0`,
		"muster_queue_ready 3",
		"muster_queue_oldest_ready_age_seconds ",
		"muster_store_up 1",
		`muster_run_wait_seconds_bucket{le="2.5"} 1`,
		"muster_run_wait_seconds_count 1",
		`muster_run_duration_seconds_bucket{outcome="succeeded",le="5"} 1`,
		`muster_run_duration_seconds_count{outcome="failed"} 1`,
		"muster_admission_open 0",
		`muster_http_requests_total{code="200",route="GET /api/v1/stats"} 1`,
		`muster_http_requests_total{code="201",route="POST /api/v1/jobs"} 1`,
		"go_goroutines ",
		"process_cpu_seconds_total ",
	} {
		if !strings.Contains(r.body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	m.SetAdmission(true)
	if r := e.do("GET", "/metrics", e.tokens[muster.RoleViewer], "", nil); !strings.Contains(r.body, "muster_admission_open 1") {
		t.Error("SetAdmission(true) not shown")
	}
	// A metrics object made before the server is the one it serves.
	shared := NewMetrics(e.store)
	srv, err := NewServer(Config{Store: e.store, Metrics: shared})
	if err != nil || srv.Metrics() != shared {
		t.Fatalf("Config.Metrics not used: %v", err)
	}
}

func TestStats(t *testing.T) {
	e := newEnv(t)
	id := e.submit(commandJob("web*", "uptime")).Job.ID
	e.finishAll(id, muster.OutcomeSucceeded)
	e.submit(commandJob("db*", "uptime"))
	r := e.do("GET", "/api/v1/stats", e.tokens[muster.RoleViewer], "", nil)
	var raw map[string]any
	if err := json.Unmarshal([]byte(r.body), &raw); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"counts", "ready", "oldest_ready_age_seconds", "wait", "run_time", "finished", "throughput_per_second"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("stats lack %q: %s", k, r.body)
		}
	}
	if strings.Contains(r.body, "mean") || strings.Contains(r.body, "avg") {
		t.Errorf("stats report a mean: %s", r.body)
	}
	var st StatsView
	_ = json.Unmarshal([]byte(r.body), &st)
	if st.Counts[muster.RunSucceeded] != 3 || st.Counts[muster.RunPending] != 2 || st.Ready != 2 ||
		st.RunTime.N != 3 || st.Wait.N != 3 || st.Finished.M1 != 3 || st.Finished.M15 != 3 ||
		st.Throughput.M1 != 3.0/60 || st.Throughput.M5 != 3.0/300 {
		t.Fatalf("stats %+v", st)
	}
	if st.Wait.P50 > st.Wait.P95 || st.Wait.P95 > st.Wait.P99 {
		t.Errorf("percentiles out of order: %+v", st.Wait)
	}
}

func TestRunOutcome(t *testing.T) {
	tests := []struct {
		ok      bool
		errText string
		want    string
	}{
		{true, "", OutcomeSucceeded},
		{true, "muster/cancelled: job 7 was cancelled while running on web1", OutcomeSucceeded},
		{false, "muster/cancelled: job 7 was cancelled while running on web1", OutcomeCancelled},
		{false, "muster/timeout-error: run 3 on web1 timed out after 30s", OutcomeTimeout},
		{false, "muster/command-error: exit code 1", OutcomeFailed},
		{false, "muster/connect-error: dial tcp: connection refused", OutcomeFailed},
		{false, "", OutcomeFailed},
		{false, "cancelled", OutcomeFailed},
	}
	for _, tc := range tests {
		if got := RunOutcome(tc.ok, tc.errText); got != tc.want {
			t.Errorf("RunOutcome(%v, %q) = %q, want %q", tc.ok, tc.errText, got, tc.want)
		}
	}
}

// TestMetricsOutcomes: each outcome is its own label of the run-time
// histogram; a cancelled run is not counted as failed.
func TestMetricsOutcomes(t *testing.T) {
	e := newEnv(t)
	m := e.srv.Metrics()
	for _, o := range []struct {
		ok      bool
		errText string
	}{
		{true, ""},
		{false, "muster/command-error: exit code 2"},
		{false, "muster/cancelled: job 1 was cancelled while running on web1"},
		{false, "muster/cancelled: job 1 was cancelled while running on web2"},
		{false, "muster/timeout-error: run 5 on db1 timed out after 1s"},
	} {
		m.ObserveFinish(2*time.Second, RunOutcome(o.ok, o.errText))
	}
	body := e.metricsBody()
	for _, want := range []string{
		`muster_run_duration_seconds_count{outcome="succeeded"} 1`,
		`muster_run_duration_seconds_count{outcome="failed"} 1`,
		`muster_run_duration_seconds_count{outcome="cancelled"} 2`,
		`muster_run_duration_seconds_count{outcome="timeout"} 1`,
	} {
		if !strings.Contains(body, want+"\n") {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}
