package main

// change.go: the change-driven loop's two measurements, each against a
// real muster server:
//
//   - factLatency: a continuous job with --facts-used os.release on a fleet
//     whose loop takes seconds per pass (a no-op backend that takes -run-time
//     per run, -slots at once). An inventory edit changes one node's
//     os.release (the job uses it) or its uptime (it does not); the time
//     from the edit to that node's next run start is measured for both.
//   - avoided: a continuous job with --fingerprint stdout and an on-change
//     action, really run on this machine's local transport, on a fleet of
//     which 1% change per pass: how many node-runs ran, how many results
//     changed, and how many actions ran, against acting on every result.

import (
	"bytes"
	"context"
	"fmt"
	"log"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/muster-run/muster"
	"github.com/muster-run/muster/internal/api"
)

// srv is a running muster server for one measurement.
type srv struct {
	cl   *api.Client
	env  []string
	proj string
	stop func()
}

// startSrv writes inv as the project's inventory and starts a server with
// extra flags.
func startSrv(bin, inv string, extra ...string) *srv {
	dir, err := os.MkdirTemp("", "muster-converge-")
	check(err)
	proj := filepath.Join(dir, "project")
	check(os.MkdirAll(proj, 0o755))
	check(os.WriteFile(filepath.Join(proj, "inventory.yaml"), []byte(inv), 0o644))
	check(os.WriteFile(filepath.Join(proj, "muster-project.yaml"), []byte("name: converge\n"), 0o644))
	data := filepath.Join(dir, "data")
	cmd := exec.Command(bin, append([]string{"server", "--listen", "127.0.0.1:0", "--data-dir", data, "--project", proj}, extra...)...)
	lw := &lockedWriter{w: new(bytes.Buffer)}
	cmd.Stderr = lw
	check(cmd.Start())
	url := ""
	for deadline := time.Now().Add(60 * time.Second); url == "" && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if m := apiLine.FindStringSubmatch(lw.String()); m != nil {
			url = m[1]
		}
	}
	if url == "" {
		log.Fatalf("the server did not start:\n%s", lw.String())
	}
	tok, err := os.ReadFile(filepath.Join(data, "admin.token"))
	check(err)
	cl, err := api.NewClient(url, strings.TrimSpace(string(tok)))
	check(err)
	return &srv{cl: cl, proj: proj, env: append(os.Environ(), "MUSTER_SERVER="+url, "MUSTER_TOKEN="+strings.TrimSpace(string(tok))),
		stop: func() { _ = cmd.Process.Kill(); _ = cmd.Wait(); os.RemoveAll(dir) }}
}

// submit runs `muster job submit` and returns the job's id.
func (s *srv) submit(bin string, args ...string) int64 {
	cmd := exec.Command(bin, append([]string{"job", "submit", "--format", "json"}, args...)...)
	cmd.Env = s.env
	out, err := cmd.Output()
	if err != nil {
		log.Fatalf("job submit %v: %v", args, err)
	}
	i := strings.Index(string(out), `"id":`)
	if i < 0 {
		log.Fatalf("job submit: no id in %s", out)
	}
	rest := string(out)[i+5:]
	id, err := strconv.ParseInt(strings.TrimSpace(rest[:strings.IndexAny(rest, ",}")]), 10, 64)
	check(err)
	return id
}

// factInventory is nodes targets with facts; release and uptime of node
// changed say which edit this is.
func factInventory(nodes int, release map[int]int, uptime map[int]int) string {
	var b strings.Builder
	b.WriteString("groups:\n  - name: fleet\n    targets:\n")
	for i := range nodes {
		fmt.Fprintf(&b, "      - {name: n%05d, uri: 127.0.0.1, facts: {os: {release: {full: '12.%d'}}, uptime: %d}}\n", i, release[i], uptime[i])
	}
	return b.String()
}

// latencies are one kind of edit's times to the next run start.
type latencies struct{ used, unused []time.Duration }

func factLatency(ctx context.Context, bin string, nodes, edits, slots int, runTime time.Duration) latencies {
	release, uptime := map[int]int{}, map[int]int{}
	s := startSrv(bin, factInventory(nodes, release, uptime), "--backend", "fake:"+runTime.String(), "--slots", strconv.Itoa(slots))
	defer s.stop()
	job := s.submit(bin, "command", "true", "-t", "fleet", "--continuous", "--facts-used", "os.release")
	// Let the loop reach its steady state: every node has run.
	for {
		j, err := s.cl.Job(ctx, job)
		check(err)
		if j.Counts[muster.RunSucceeded] >= nodes {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	var l latencies
	for e := range 2 * edits {
		node := rand.IntN(nodes)
		used := e%2 == 0
		if used {
			release[node]++
		} else {
			uptime[node]++
		}
		name := fmt.Sprintf("n%05d", node)
		inv := filepath.Join(s.proj, "inventory.yaml")
		tmp := inv + ".tmp"
		check(os.WriteFile(tmp, []byte(factInventory(nodes, release, uptime)), 0o644))
		t0 := time.Now()
		check(os.Rename(tmp, inv))
		var d time.Duration
		for d == 0 {
			runs, err := s.cl.Runs(ctx, job, api.RunsOptions{Node: name})
			check(err)
			for _, r := range runs {
				if r.StartedAt.After(t0) && (d == 0 || r.StartedAt.Sub(t0) < d) {
					d = r.StartedAt.Sub(t0)
				}
			}
			if d == 0 {
				time.Sleep(5 * time.Millisecond)
			}
		}
		if used {
			l.used = append(l.used, d)
		} else {
			l.unused = append(l.unused, d)
		}
		time.Sleep(200 * time.Millisecond)
	}
	return l
}

// avoidance is the fingerprinted loop's bookkeeping.
type avoidance struct {
	nodes, passes, runs, changes, actions int
}

func avoided(ctx context.Context, bin string, nodes, passes int) avoidance {
	state, err := os.MkdirTemp("", "muster-converge-state-")
	check(err)
	defer os.RemoveAll(state)
	var inv strings.Builder
	inv.WriteString("groups:\n  - name: fleet\n    config: {transport: local}\n    targets:\n")
	for i := range nodes {
		fmt.Fprintf(&inv, "      - n%05d\n", i)
		check(os.WriteFile(filepath.Join(state, fmt.Sprintf("n%05d", i)), []byte("v0\n"), 0o644))
	}
	s := startSrv(bin, inv.String(), "--allow-local-targets")
	defer s.stop()
	actions := filepath.Join(state, "actions.log")
	job := s.submit(bin, "command", "cat "+state+"/$MUSTER_NODE", "-t", "fleet", "--continuous",
		"--fingerprint", "stdout", "--on-change", "command:echo \"$MUSTER_NODE\" >> "+actions)
	succeeded := func() int {
		j, err := s.cl.Job(ctx, job)
		check(err)
		return j.Counts[muster.RunSucceeded]
	}
	lines := func() int {
		b, _ := os.ReadFile(actions)
		return strings.Count(string(b), "\n")
	}
	// The first results count as changes (there was none before): let
	// every node's first action run, then measure from there.
	for lines() < nodes {
		time.Sleep(100 * time.Millisecond)
	}
	a := avoidance{nodes: nodes, passes: passes}
	runs0, acts0 := succeeded(), lines()
	for p := range passes {
		base := succeeded()
		for _, i := range rand.Perm(nodes)[:max(1, nodes/100)] {
			path := filepath.Join(state, fmt.Sprintf("n%05d", i))
			check(os.WriteFile(path+".tmp", []byte(fmt.Sprintf("v%d\n", p+1)), 0o644))
			check(os.Rename(path+".tmp", path))
			a.changes++
		}
		for succeeded() < base+2*nodes { // two passes: every changed node ran since its change
			time.Sleep(100 * time.Millisecond)
		}
	}
	time.Sleep(2 * time.Second) // the last actions run
	a.runs, a.actions = succeeded()-runs0, lines()-acts0
	return a
}

func pctl(ds []time.Duration, p float64) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[min(len(s)-1, max(0, int(float64(len(s))*p/100+0.5)-1))]
}
