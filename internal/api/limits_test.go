package api

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/muster-run/muster"
)

// fakeClock is a Config.Now that moves only when told.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// metricsBody scrapes /metrics.
func (e *env) metricsBody() string {
	e.t.Helper()
	r := e.do("GET", "/metrics", e.tokens[muster.RoleViewer], "", nil)
	if r.status != 200 {
		e.t.Fatalf("/metrics: %d %s", r.status, r.body)
	}
	return r.body
}

// names returns a comma-separated spec of n node names.
func names(n int) string {
	var b strings.Builder
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "n%d", i)
	}
	return b.String()
}

func TestMaxTargetsPerJob(t *testing.T) {
	small := newEnv(t, func(c *Config) { c.MaxTargetsPerJob = 3 })
	big := newEnv(t, func(c *Config) { c.MaxTargetsPerJob = 10000; c.Resolve = nil })
	unlimited := newEnv(t)
	tests := []struct {
		name    string
		env     *env
		targets any
		msg     string // "" when accepted
	}{
		{"within the limit", small, "web*", ""},
		{"at the limit after duplicates", small, []string{"web1", "web1", "web2", "web3", "web2"}, ""},
		{"over the limit", small, "*", "targets: job resolves to 5 targets; this server allows at most 3 per job (--max-targets-per-job)"},
		{"over the limit across a list", small, []string{"web*", "db1", "web1"}, "targets: job resolves to 4 targets; this server allows at most 3 per job (--max-targets-per-job)"},
		{"100000 names", big, names(100000), "targets: job resolves to 100000 targets; this server allows at most 10000 per job (--max-targets-per-job)"},
		{"10000 names", big, names(10000), ""},
		{"no limit", unlimited, "*", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before, _ := tc.env.store.ListJobs(tc.env.ctx, muster.JobFilter{})
			body := map[string]any{"kind": "command", "targets": tc.targets, "spec": map[string]any{"command": "uptime"}}
			r := tc.env.doJSON("POST", "/api/v1/jobs", tc.env.tokens[muster.RoleOperator], body)
			after, _ := tc.env.store.ListJobs(tc.env.ctx, muster.JobFilter{})
			if tc.msg == "" {
				if r.status != 201 || len(after) != len(before)+1 {
					t.Fatalf("got %d %.300s, want 201", r.status, r.body)
				}
				return
			}
			if b := errorOf(t, r); r.status != 400 || b.Error.Code != CodeInvalid || b.Error.Message != tc.msg {
				t.Fatalf("got %d %s %q, want 400 %q", r.status, b.Error.Code, b.Error.Message, tc.msg)
			}
			if len(after) != len(before) {
				t.Fatalf("a refused job was stored")
			}
			checkResponse(t, loadDoc(t), route{Method: "POST", Path: "/api/v1/jobs"}, r)
		})
	}
	for _, c := range []struct {
		env  *env
		want []string
	}{
		{small, []string{`muster_api_limit{limit="targets_per_job"} 3`, `muster_api_limit{limit="jobs_per_minute"} 0`,
			`muster_api_limit_refusals_total{limit="targets_per_job"} 2`, `muster_api_limit_refusals_total{limit="jobs_per_minute"} 0`}},
		{big, []string{`muster_api_limit{limit="targets_per_job"} 10000`, `muster_api_limit_refusals_total{limit="targets_per_job"} 1`}},
		{unlimited, []string{`muster_api_limit{limit="targets_per_job"} 0`, `muster_api_limit_refusals_total{limit="targets_per_job"} 0`}},
	} {
		body := c.env.metricsBody()
		for _, w := range c.want {
			if !strings.Contains(body, w+"\n") {
				t.Errorf("/metrics lacks %q", w)
			}
		}
	}
}

func TestMaxJobsPerMinute(t *testing.T) {
	clock := &fakeClock{now: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
	e := newEnv(t, func(c *Config) { c.MaxJobsPerMinute = 2; c.Now = clock.Now })
	good := commandJob("web1", "uptime")
	bad := commandJob("mail*", "uptime")
	steps := []struct {
		name    string
		advance time.Duration
		role    muster.Role
		req     SubmitRequest
		status  int
		retry   string // the Retry-After header of a 429
	}{
		{"first", 0, muster.RoleOperator, good, 201, ""},
		{"second", 0, muster.RoleOperator, good, 201, ""},
		{"third within the minute", 0, muster.RoleOperator, good, 429, "30"},
		{"another token", 0, muster.RoleAdmin, good, 201, ""},
		{"refused before decoding", 0, muster.RoleOperator, bad, 429, "30"},
		{"10s later", 10 * time.Second, muster.RoleOperator, good, 429, "20"},
		{"30s later", 20 * time.Second, muster.RoleOperator, good, 201, ""},
		{"at once after", 0, muster.RoleOperator, good, 429, "30"},
		{"a minute later, a bad job", time.Minute, muster.RoleOperator, bad, 400, ""},
		{"the bad job did not count", 0, muster.RoleOperator, good, 201, ""},
		{"the bucket holds two", 0, muster.RoleOperator, good, 201, ""},
		{"and no more", 0, muster.RoleOperator, good, 429, "30"},
		{"a clock that goes back", -time.Hour, muster.RoleOperator, good, 429, "30"},
	}
	refused := 0
	for _, st := range steps {
		clock.Add(st.advance)
		r := e.doJSON("POST", "/api/v1/jobs", e.tokens[st.role], st.req)
		if r.status != st.status {
			t.Fatalf("%s: got %d %s, want %d", st.name, r.status, r.body, st.status)
		}
		if got := r.header.Get("Retry-After"); got != st.retry {
			t.Fatalf("%s: Retry-After %q, want %q", st.name, got, st.retry)
		}
		if st.status != 429 {
			continue
		}
		refused++
		want := fmt.Sprintf(`too many jobs: token "operator-token" may submit at most 2 jobs a minute to this server `+
			`(--max-jobs-per-minute); retry in %ss`, st.retry)
		if b := errorOf(t, r); b.Error.Code != CodeRateLimited || b.Error.Message != want {
			t.Fatalf("%s: got %s %q, want %s %q", st.name, b.Error.Code, b.Error.Message, CodeRateLimited, want)
		}
		checkResponse(t, loadDoc(t), route{Method: "POST", Path: "/api/v1/jobs"}, r)
	}
	// The client reports the wait.
	_, err := e.client(muster.RoleOperator).Submit(e.ctx, good)
	var ae *APIError
	if !isStatus(err, 429) || !errors.As(err, &ae) || ae.RetryAfter != 30*time.Second || ae.Code != CodeRateLimited {
		t.Fatalf("client: %#v", err)
	}
	refused++
	body := e.metricsBody()
	for _, w := range []string{`muster_api_limit{limit="jobs_per_minute"} 2`,
		fmt.Sprintf(`muster_api_limit_refusals_total{limit="jobs_per_minute"} %d`, refused),
		`muster_http_requests_total{code="429",route="POST /api/v1/jobs"} `} {
		if !strings.Contains(body, w) {
			t.Errorf("/metrics lacks %q", w)
		}
	}
}

// TestMaxJobsPerMinuteConcurrent: concurrent submissions cannot overrun
// the bucket.
func TestMaxJobsPerMinuteConcurrent(t *testing.T) {
	clock := &fakeClock{now: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
	e := newEnv(t, func(c *Config) { c.MaxJobsPerMinute = 3; c.Now = clock.Now })
	tok := e.tokens[muster.RoleOperator]
	statuses := make([]int, 12)
	var wg sync.WaitGroup
	for i := range statuses {
		wg.Go(func() {
			req := e.newReq("POST", "/api/v1/jobs", commandJob("web1", fmt.Sprintf("echo %d", i)))
			req.Header.Set("Authorization", "Bearer "+tok)
			resp, err := e.hs.Client().Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			statuses[i] = resp.StatusCode
		})
	}
	wg.Wait()
	n := map[int]int{}
	for _, s := range statuses {
		n[s]++
	}
	if n[201] != 3 || n[429] != 9 {
		t.Fatalf("statuses %v, want 3 accepted and 9 refused", n)
	}
}

func TestLimitsConfig(t *testing.T) {
	e := newEnv(t)
	for _, cfg := range []Config{{Store: e.store, MaxTargetsPerJob: -1}, {Store: e.store, MaxJobsPerMinute: -1}} {
		if _, err := NewServer(cfg); err == nil || !strings.Contains(err.Error(), "must not be negative") {
			t.Errorf("%+v: %v", cfg, err)
		}
	}
}
