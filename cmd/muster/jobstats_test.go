package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/muster-run/muster"
	"github.com/muster-run/muster/internal/api"
)

// hangGuard bounds how long a test waits for something that must happen;
// it is not a speed assertion.
const hangGuard = 2 * time.Minute

// cliProc is `muster args...` in a process of its own, its stdout and
// stderr read line by line.
type cliProc struct {
	cmd            *exec.Cmd
	stdout, stderr chan string
	done           chan struct{}
	exit           error
}

// startCLI starts the CLI against srv (its URL and admin token, unless
// token is set).
func startCLI(t *testing.T, srv *serverProc, token string, args ...string) *cliProc {
	t.Helper()
	if token == "" {
		b, err := os.ReadFile(filepath.Join(srv.dataDir, "admin.token"))
		if err != nil {
			t.Fatal(err)
		}
		token = strings.TrimSpace(string(b))
	}
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "MUSTER_TEST_AS_MAIN=1", "MUSTER_SERVER="+srv.url, "MUSTER_TOKEN="+token)
	outPipe, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	errPipe, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &cliProc{cmd: cmd, stdout: make(chan string, 1000), stderr: make(chan string, 1000), done: make(chan struct{})}
	scan := func(r io.Reader, ch chan string) chan struct{} {
		eof := make(chan struct{})
		go func() {
			defer close(eof)
			sc := bufio.NewScanner(r)
			for sc.Scan() {
				select {
				case ch <- sc.Text():
				default: // nobody reads this far back
				}
			}
		}()
		return eof
	}
	outEOF, errEOF := scan(outPipe, p.stdout), scan(errPipe, p.stderr)
	go func() {
		<-outEOF
		<-errEOF
		p.exit = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-p.done
	})
	return p
}

// line waits for a line of ch that ok accepts, skipping others.
func (p *cliProc) line(t *testing.T, ch chan string, what string, ok func(string) bool) string {
	t.Helper()
	timeout := time.After(hangGuard)
	var seen []string
	for {
		select {
		case l := <-ch:
			if ok(l) {
				return l
			}
			seen = append(seen, l)
		case <-p.done:
			t.Fatalf("the CLI exited (%v) before %s; seen:\n%s", p.exit, what, strings.Join(seen, "\n"))
		case <-timeout:
			t.Fatalf("no %s; seen:\n%s", what, strings.Join(seen, "\n"))
		}
	}
}

// wait waits for the process to exit and returns its exit code.
func (p *cliProc) wait(t *testing.T) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(hangGuard):
		t.Fatal("the CLI did not exit")
	}
	var ee *exec.ExitError
	if errors.As(p.exit, &ee) {
		return ee.ExitCode()
	}
	if p.exit != nil {
		t.Fatal(p.exit)
	}
	return 0
}

// statsJSONLine decodes a line of `job stats --watch --format json`.
func statsJSONLine(l string) (time.Time, api.StatsView, bool) {
	var v struct {
		Time time.Time `json:"time"`
		api.StatsView
	}
	dec := json.NewDecoder(strings.NewReader(l))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil || v.Time.IsZero() || v.Counts == nil {
		return time.Time{}, api.StatsView{}, false
	}
	return v.Time, v.StatsView, true
}

// `job stats --watch --format json` prints one object a line, follows the
// queue, says so when the server goes away, keeps trying, picks up again
// when the server is back, and exits 0 on Ctrl-C.
func TestStatsWatchJSONSurvivesServerRestart(t *testing.T) {
	dir, dataDir := localProject(t, 2), t.TempDir()
	srv := startServer(t, dir, dataDir)
	w := startCLI(t, srv, "", "job", "stats", "--watch", "--interval", "100ms", "--format", "json")
	w.line(t, w.stdout, "a JSON line", func(l string) bool {
		_, st, ok := statsJSONLine(l)
		return ok && st.Counts[muster.RunSucceeded] == 0
	})
	c := srv.client()
	job := submit(t, c, api.SubmitRequest{Kind: muster.JobCommand, Targets: api.Targets{Spec: "nodes"},
		Spec: muster.JobSpec{Command: "true"}})
	waitJob(t, c, job.Job.ID, "finish", func(j api.JobView) bool { return j.State == muster.JobSucceeded })
	var last time.Time
	w.line(t, w.stdout, "a line with the two succeeded runs", func(l string) bool {
		tm, st, ok := statsJSONLine(l)
		last = tm
		return ok && st.Counts[muster.RunSucceeded] == 2 && st.Finished.M15 == 2
	})

	addr := strings.TrimPrefix(srv.url, "http://")
	if err := srv.stop(syscall.SIGKILL); err == nil {
		t.Fatal("a killed server exited 0")
	}
	w.line(t, w.stderr, "a message that the server is away", func(l string) bool {
		return strings.Contains(l, "cannot read the stats") && strings.Contains(l, "trying again in")
	})
	// A second failure waits longer.
	w.line(t, w.stderr, "a longer backoff", func(l string) bool {
		return strings.Contains(l, "cannot read the stats") && strings.Contains(l, "trying again in 200ms")
	})
	// Same address, same database: the watch carries on.
	startServer(t, dir, dataDir, "--listen", addr)
	w.line(t, w.stderr, "a message that the server is back", func(l string) bool {
		return strings.Contains(l, "the server answers again after")
	})
	w.line(t, w.stdout, "a fresh line from the restarted server", func(l string) bool {
		tm, st, ok := statsJSONLine(l)
		return ok && tm.After(last) && st.Counts[muster.RunSucceeded] == 2
	})
	if err := w.cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	if code := w.wait(t); code != 0 {
		t.Fatalf("Ctrl-C: exit %d, want 0", code)
	}
}

// Without a terminal, the human watch appends timestamped blocks.
func TestStatsWatchHumanAppends(t *testing.T) {
	srv := startServer(t, localProject(t, 1), t.TempDir())
	w := startCLI(t, srv, "", "job", "stats", "--watch", "--interval", "100ms")
	stamp := regexp.MustCompile(`^--- \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d`)
	var stamps []string
	for range 2 {
		stamps = append(stamps, w.line(t, w.stdout, "a timestamp line", stamp.MatchString))
		w.line(t, w.stdout, "the runs line", func(l string) bool {
			return strings.HasPrefix(l, "Runs:         ") && strings.Contains(l, "pending 0, running 0")
		})
		w.line(t, w.stdout, "the throughput line", func(l string) bool { return strings.HasPrefix(l, "Throughput:") })
	}
	if stamps[0] == "" || strings.Contains(strings.Join(stamps, ""), "\x1b[") {
		t.Errorf("not appended plainly: %q", stamps)
	}
	if err := w.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := w.wait(t); code != 0 {
		t.Fatalf("SIGTERM: exit %d, want 0", code)
	}
}

// A token the server refuses ends the watch at once with exit 2: retrying
// would not mend it.
func TestStatsWatchRefusedToken(t *testing.T) {
	srv := startServer(t, localProject(t, 1), t.TempDir())
	w := startCLI(t, srv, api.TokenPrefix+"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "job", "stats", "--watch", "--interval", "100ms")
	msg := w.line(t, w.stderr, "the refusal", func(l string) bool { return strings.HasPrefix(l, "Error:") })
	if code := w.wait(t); code != exitUsage {
		t.Fatalf("refused token: exit %d, want %d (%s)", code, exitUsage, msg)
	}
	if !strings.Contains(msg, "get queue stats") {
		t.Errorf("the error does not say what failed: %s", msg)
	}
}

func TestStatsFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"job", "stats", "--watch", "--interval", "10ms"}, "--interval must be at least 100ms, got 10ms"},
		{[]string{"job", "stats", "--interval", "5s"}, "--interval goes with --watch"},
	} {
		code, _, errOut := cli(t, tc.args...)
		if code != exitUsage || !strings.Contains(errOut, tc.want) {
			t.Errorf("%v: exit %d %q, want %d %q", tc.args, code, errOut, exitUsage, tc.want)
		}
	}
}

// The server hands its --slots, --max-running and --capacity-target-age
// to the capacity signal, on /api/v1/capacity and /metrics.
func TestCapacityServer(t *testing.T) {
	srv := startServer(t, localProject(t, 2), t.TempDir(), "--slots", "3", "--max-running", "7", "--capacity-target-age", "45s")
	c := srv.client()
	ctx := context.Background()
	v, err := c.Capacity(ctx, 0, "")
	if err != nil {
		t.Fatal(err)
	}
	if v.SlotsPerWorker != 3 || v.MaxRunning != 7 || v.TargetAgeSeconds != 45 || v.Backlog != 0 || v.WorkersNeeded != 0 ||
		!strings.Contains(v.Explanation, "idle") {
		t.Fatalf("capacity %+v", v)
	}
	job := submit(t, c, api.SubmitRequest{Kind: muster.JobCommand, Targets: api.Targets{Spec: "nodes"}, Spec: muster.JobSpec{Command: "true"}})
	waitJob(t, c, job.Job.ID, "finish", func(j api.JobView) bool { return j.State == muster.JobSucceeded })
	if v, err = c.Capacity(ctx, 2*time.Minute, "15m"); err != nil || v.Finished != 2 || v.Window != "15m" ||
		v.TargetAgeSeconds != 120 || v.ThroughputSource != api.SourceRunTime {
		t.Fatalf("capacity after a job: %+v %v", v, err)
	}
	body := metricsOf(t, srv)
	for _, want := range []string{"muster_capacity_target_age_seconds 45\n", "muster_capacity_workers_needed 0\n",
		"muster_capacity_additional_workers 0\n"} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

// The autoscaling examples in contrib/ parse, have the shape KEDA and
// Prometheus expect, and name only metrics a real server exports.
func TestCapacityContrib(t *testing.T) {
	const dir = "../../contrib/autoscaling"
	var queries []string

	// The KEDA file: a ScaledObject with Prometheus triggers (and the
	// Deployment it scales).
	b, err := os.ReadFile(filepath.Join(dir, "keda-scaledobject.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	kinds := map[string]bool{}
	for {
		var doc struct {
			Kind string `yaml:"kind"`
			Spec struct {
				ScaleTargetRef struct{ Kind, Name string } `yaml:"scaleTargetRef"`
				Triggers       []struct {
					Type     string            `yaml:"type"`
					Metadata map[string]string `yaml:"metadata"`
				} `yaml:"triggers"`
			} `yaml:"spec"`
		}
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("keda-scaledobject.yaml: %v", err)
		}
		kinds[doc.Kind] = true
		if doc.Kind != "ScaledObject" {
			continue
		}
		if doc.Spec.ScaleTargetRef.Kind != "Deployment" || len(doc.Spec.Triggers) == 0 {
			t.Errorf("ScaledObject: target %+v, %d triggers", doc.Spec.ScaleTargetRef, len(doc.Spec.Triggers))
		}
		for _, tr := range doc.Spec.Triggers {
			if tr.Type != "prometheus" || tr.Metadata["query"] == "" || tr.Metadata["threshold"] == "" || tr.Metadata["serverAddress"] == "" {
				t.Errorf("trigger %+v: want a prometheus trigger with serverAddress, query and threshold", tr)
			}
			queries = append(queries, tr.Metadata["query"])
		}
	}
	if !kinds["ScaledObject"] || !kinds["Deployment"] {
		t.Errorf("keda-scaledobject.yaml has %v", kinds)
	}

	// The alerting rules: groups of rules, each with a name and an expr.
	b, err = os.ReadFile(filepath.Join(dir, "muster-alerts.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var rules struct {
		Groups []struct {
			Name  string `yaml:"name"`
			Rules []struct {
				Alert       string            `yaml:"alert"`
				Expr        string            `yaml:"expr"`
				For         string            `yaml:"for"`
				Labels      map[string]string `yaml:"labels"`
				Annotations map[string]string `yaml:"annotations"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(b, &rules); err != nil {
		t.Fatalf("muster-alerts.yaml: %v", err)
	}
	n := 0
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			n++
			if r.Alert == "" || r.Expr == "" || r.Labels["severity"] == "" || r.Annotations["summary"] == "" {
				t.Errorf("rule %+v lacks alert, expr, severity or summary", r)
			}
			if _, err := time.ParseDuration(r.For); err != nil {
				t.Errorf("rule %s: for %q: %v", r.Alert, r.For, err)
			}
			queries = append(queries, r.Expr)
		}
	}
	if n == 0 {
		t.Fatal("muster-alerts.yaml has no rules")
	}
	readme, err := os.ReadFile(filepath.Join(dir, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	queries = append(queries, string(readme))

	// Every metric they name is on a real server's /metrics (after a job,
	// so that every series exists).
	srv := startServer(t, localProject(t, 1), t.TempDir())
	c := srv.client()
	job := submit(t, c, api.SubmitRequest{Kind: muster.JobCommand, Targets: api.Targets{Spec: "nodes"}, Spec: muster.JobSpec{Command: "true"}})
	waitJob(t, c, job.Job.ID, "finish", func(j api.JobView) bool { return j.State == muster.JobSucceeded })
	exported := map[string]bool{}
	for _, l := range strings.Split(metricsOf(t, srv), "\n") {
		if f := strings.Fields(l); len(f) >= 3 && f[0] == "#" && f[1] == "TYPE" {
			exported[f[2]] = true
		} else if len(f) >= 2 && f[0] != "#" {
			exported[strings.SplitN(f[0], "{", 2)[0]] = true
		}
	}
	names := regexp.MustCompile(`\bmuster_[a-z0-9_]+`)
	checked := map[string]bool{}
	for _, q := range queries {
		for _, name := range names.FindAllString(q, -1) {
			if name == "muster_server" || checked[name] { // the scrape job's name in the README
				continue
			}
			checked[name] = true
			if !exported[name] {
				t.Errorf("contrib/autoscaling names %s, which a server does not export", name)
			}
		}
	}
	for _, must := range []string{"muster_capacity_workers_needed", "muster_queue_oldest_ready_age_seconds", "muster_queue_ready",
		"muster_capacity_additional_workers"} {
		if !checked[must] {
			t.Errorf("contrib/autoscaling does not use %s", must)
		}
	}
}

// On a terminal each reading redraws the screen in place; elsewhere it is
// appended under a timestamp.
func TestStatsRedraw(t *testing.T) {
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	st := api.StatsView{Counts: map[muster.RunState]int{muster.RunPending: 4}, Ready: 4, OldestReadyAgeSeconds: 1.5}
	for _, tc := range []struct {
		redraw       bool
		prefix, lack string
	}{
		{true, "\x1b[H\x1b[2JEvery 2s: muster job stats    2030-01-02 03:04:05\n\nRuns:", "---"},
		{false, "--- 2030-01-02T03:04:05Z\nRuns:", "\x1b["},
	} {
		var out bytes.Buffer
		a := &app{stdout: &out}
		if err := a.showStats(now, st, 2*time.Second, false, tc.redraw); err != nil {
			t.Fatal(err)
		}
		s := out.String()
		if !strings.HasPrefix(s, tc.prefix) || strings.Contains(s, tc.lack) ||
			!strings.Contains(s, "Ready:        4 (oldest waiting 1.5s)\n") {
			t.Errorf("redraw %v:\n%q", tc.redraw, s)
		}
	}
}
