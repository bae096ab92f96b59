package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" driver, to make test schemas

	"github.com/muster-run/muster"
	"github.com/muster-run/muster/internal/api"
	"github.com/muster-run/muster/internal/testkit/pgtest"
)

// privateCluster starts a PostgreSQL cluster of the test's own (so it may
// restart it) and returns its URL and a restart function.
func privateCluster(t *testing.T) (string, func()) {
	t.Helper()
	pgtest.URL(t) // PostgreSQL is expected here: skip or fail as the others do
	out, err := exec.Command("../../scripts/pgtest.sh").Output()
	if err != nil {
		t.Fatalf("starting a private PostgreSQL: %v", err)
	}
	vars := map[string]string{}
	for _, line := range strings.Split(string(out), "\n") {
		if kv, ok := strings.CutPrefix(line, "export "); ok {
			k, v, _ := strings.Cut(kv, "=")
			vars[k] = strings.Trim(v, "'")
		}
	}
	dir := vars["MUSTER_TEST_POSTGRES_DIR"]
	if dir == "" || vars["MUSTER_TEST_POSTGRES_URL"] == "" {
		t.Fatalf("pgtest.sh printed no URL:\n%s", out)
	}
	t.Cleanup(func() { _ = exec.Command("../../scripts/pgtest.sh", "stop", dir).Run() })
	return vars["MUSTER_TEST_POSTGRES_URL"], func() {
		if out, err := exec.Command("../../scripts/pgtest.sh", "restart", dir).CombinedOutput(); err != nil {
			t.Fatalf("restarting PostgreSQL: %v\n%s", err, out)
		}
	}
}

// checkExactlyOnce asserts that every run of the jobs succeeded in its
// first claim-counted attempt set and that no node's runs overlapped in
// time (from the runs' own start and finish times).
func checkExactlyOnce(t *testing.T, c *api.Client, jobs []int64, perJob int) {
	t.Helper()
	byNode := map[string][]api.RunView{}
	total := 0
	for _, id := range jobs {
		runs, err := c.Runs(context.Background(), id, api.RunsOptions{Limit: 10 * perJob})
		if err != nil {
			t.Fatal(err)
		}
		if len(runs) != perJob {
			t.Fatalf("job %d has %d runs, want %d: runs were lost", id, len(runs), perJob)
		}
		for _, r := range runs {
			total++
			if r.State != muster.RunSucceeded {
				t.Errorf("run %d on %s: %s (%s)", r.ID, r.Target, r.State, r.Error)
			}
			byNode[r.Target] = append(byNode[r.Target], r)
		}
	}
	for node, runs := range byNode {
		sort.Slice(runs, func(i, j int) bool { return runs[i].StartedAt.Before(runs[j].StartedAt) })
		for i := 1; i < len(runs); i++ {
			if runs[i].StartedAt.Before(runs[i-1].FinishedAt) {
				t.Errorf("node %s ran runs %d and %d at once (%s < %s)", node, runs[i-1].ID, runs[i].ID,
					runs[i].StartedAt.Format(time.RFC3339Nano), runs[i-1].FinishedAt.Format(time.RFC3339Nano))
			}
		}
	}
	t.Logf("%d runs over %d nodes: each succeeded once, none overlapped on a node", total, len(byNode))
}

// submitWave submits jobs x nodes runs of the fake backend, each job on
// every node, from several goroutines.
func submitWave(t *testing.T, c *api.Client, jobs int) []int64 {
	t.Helper()
	ids := make([]int64, jobs)
	var wg sync.WaitGroup
	for i := range jobs {
		wg.Go(func() {
			res, err := c.Submit(context.Background(), api.SubmitRequest{Kind: muster.JobCommand,
				Targets: api.Targets{Spec: "nodes"}, Spec: muster.JobSpec{Command: fmt.Sprintf("true # %d", i)}})
			if err != nil {
				t.Error(err)
				return
			}
			ids[i] = res.Job.ID
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	return ids
}

// Two servers on one PostgreSQL database work through 10,000 node-runs on
// 500 nodes: no node ever runs two at once and every run completes once.
func TestServersSharePostgres(t *testing.T) {
	db := pgtest.Schema(t, "")
	dir := localProject(t, 500)
	t.Setenv("MUSTER_SECRET_KEY", strings.Repeat("ab", 32))
	data := t.TempDir() // shared: the admin token the first server writes
	a := startServer(t, dir, data, "--database", db, "--backend", "fake:2ms")
	b := startServer(t, dir, data, "--database", db, "--backend", "fake:2ms")
	ids := submitWave(t, a.client(), 20)
	for _, id := range ids {
		waitJob(t, b.client(), id, "finishes", func(j api.JobView) bool { return j.Finished })
	}
	checkExactlyOnce(t, a.client(), ids, 500)
	for _, s := range []*serverProc{a, b} {
		if !strings.Contains(metricsOf(t, s), "muster_run_duration_seconds_count") {
			t.Errorf("server %s reports no run durations", s.url)
		}
	}
}

// The database restarts while two servers run: they reconnect and carry
// on, and every run still completes exactly once.
func TestServersSurviveDatabaseRestart(t *testing.T) {
	base, restart := privateCluster(t)
	db := pgtest.Schema(t, base)
	dir := localProject(t, 100)
	t.Setenv("MUSTER_SECRET_KEY", strings.Repeat("cd", 32))
	args := []string{"--database", db, "--backend", "fake:100ms", "--lease-ttl", "3s", "--slots", "20"}
	data := t.TempDir()
	a := startServer(t, dir, data, args...)
	b := startServer(t, dir, data, args...)
	ids := submitWave(t, a.client(), 20)
	waitJob(t, a.client(), ids[0], "work starts", func(j api.JobView) bool {
		return j.Counts[muster.RunSucceeded] > 0
	})
	restart()
	for _, id := range ids {
		waitJob(t, b.client(), id, "finishes after the restart", func(j api.JobView) bool { return j.Finished })
	}
	checkExactlyOnce(t, a.client(), ids, 100)
	if !strings.Contains(a.Log()+b.Log(), "will retry") {
		t.Errorf("neither server noticed the restart: it did not hit mid-work")
	}
	// A job submitted after the restart still starts (LISTEN came back).
	res := submitWave(t, b.client(), 1)
	waitJob(t, a.client(), res[0], "finishes", func(j api.JobView) bool { return j.State == muster.JobSucceeded })
}

func metricsOf(t *testing.T, s *serverProc) string {
	t.Helper()
	tok, _ := os.ReadFile(s.dataDir + "/admin.token")
	req, _ := http.NewRequest("GET", s.url+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(tok)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET /metrics: %s\n%s", resp.Status, body)
	}
	return string(body)
}
