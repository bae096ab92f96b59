// Command converge measures what convergence costs on muster's queue
// (bench/results/converge.md), against real `muster server` processes
// with a no-op backend (--backend fake:0: every node-run succeeds at once
// without touching a target), on SQLite and, with -postgres, on
// PostgreSQL.
//
// Annealer overhead: a deployment of -nodes nodes times -roles roles in a
// chain (role k requires role k-1 on the same node), applied with
// `muster deploy apply`, runs until every node-role is active; beside it,
// in the same run, the same node-runs as -roles plain jobs with no
// dependencies. Each is measured -rounds times, interleaved (deploy,
// plain, deploy, plain, ...), each on a fresh server and store. The
// overhead per node-role transition is the difference of the medians
// divided by nodes x roles. Then the change-driven loop (change.go): the
// time from a fact change to the node's run, and the runs an on-change
// action is spared by fingerprinting.
//
//	go run ./bench/converge -muster bin/muster -nodes 1000 -roles 5 -postgres postgres://... -out bench/results/converge.md
package main

import (
	"bytes"
	"context"
	"database/sql"
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" driver, for fresh schemas

	"github.com/muster-run/muster"
	"github.com/muster-run/muster/internal/api"
	"github.com/muster-run/muster/internal/testkit/procfs"
)

var apiLine = regexp.MustCompile(`msg="muster server started".* api=(\S+)`)

func main() {
	bin := flag.String("muster", "bin/muster", "the muster binary")
	nodes := flag.Int("nodes", 1000, "nodes in the deployment")
	roles := flag.Int("roles", 5, "roles, in a chain")
	rounds := flag.Int("rounds", 3, "measurements of each kind, interleaved")
	pgURL := flag.String("postgres", os.Getenv("MUSTER_BENCH_POSTGRES_URL"), "also measure on this PostgreSQL database (fresh schemas in it)")
	factNodes := flag.Int("fact-nodes", 1000, "nodes of the facts-used loop")
	edits := flag.Int("edits", 20, "inventory edits of each kind (a used fact, an unused one)")
	loopSlots := flag.Int("slots", 20, "the facts-used loop's server slots")
	runTime := flag.Duration("run-time", 100*time.Millisecond, "each node-run's time in the facts-used loop (no-op backend)")
	fpNodes := flag.Int("fingerprint-nodes", 300, "nodes of the fingerprinted loop (run for real, locally)")
	passes := flag.Int("passes", 5, "passes of the fingerprinted loop, 1% of nodes changing in each")
	out := flag.String("out", "bench/results/converge.md", "report path")
	flag.Parse()
	ctx := context.Background()
	stores := []string{""}
	if *pgURL != "" {
		stores = append(stores, *pgURL)
	}
	var rows []row
	for _, db := range stores {
		r := row{store: "SQLite"}
		if db != "" {
			r.store = "PostgreSQL"
		}
		for i := range *rounds {
			log.Printf("%s round %d: deployment", r.store, i+1)
			r.deploy = append(r.deploy, measure(ctx, *bin, db, *nodes, *roles, true))
			log.Printf("%s round %d: plain jobs", r.store, i+1)
			r.plain = append(r.plain, measure(ctx, *bin, db, *nodes, *roles, false))
		}
		rows = append(rows, r)
	}
	log.Printf("facts-used loop: %d nodes, %d slots, %s per run", *factNodes, *loopSlots, *runTime)
	lat := factLatency(ctx, *bin, *factNodes, *edits, *loopSlots, *runTime)
	log.Printf("fingerprinted loop: %d nodes, %d passes", *fpNodes, *passes)
	av := avoided(ctx, *bin, *fpNodes, *passes)
	var b bytes.Buffer
	fmt.Fprintf(&b, "# Convergence: what it costs on the queue\n\n")
	fmt.Fprintf(&b, "`go run ./bench/converge`, %s, muster %s. One `muster server --backend fake:0` per measurement (every\n"+
		"node-run succeeds at once without touching a target), on a fresh store each time; %d rounds of each kind,\n"+
		"interleaved; medians.\n\n", time.Now().UTC().Format("2006-01-02"), commit(), *rounds)
	fmt.Fprintf(&b, "## Annealer overhead per node-role transition\n\n")
	fmt.Fprintf(&b, "A deployment of %d nodes x %d roles in a chain (each role requires the previous one on the same node),\n"+
		"applied with `muster deploy apply` and run until every node-role is active, beside the same %d node-runs\n"+
		"as %d plain jobs without dependencies. The time runs from the command's start to the last run's end.\n\n",
		*nodes, *roles, *nodes**roles, *roles)
	fmt.Fprintf(&b, "| store | deployment s (median, min-max) | plain jobs s (median, min-max) | ratio | overhead per transition ms | node-roles/s |\n")
	fmt.Fprintf(&b, "|---|---:|---:|---:|---:|---:|\n")
	for _, r := range rows {
		d, p := median(r.deploy), median(r.plain)
		n := float64(*nodes * *roles)
		fmt.Fprintf(&b, "| %s | %.2f (%.2f-%.2f) | %.2f (%.2f-%.2f) | %.2fx | **%.3f** | %.0f |\n", r.store,
			d.Seconds(), slices.Min(r.deploy).Seconds(), slices.Max(r.deploy).Seconds(),
			p.Seconds(), slices.Min(r.plain).Seconds(), slices.Max(r.plain).Seconds(),
			d.Seconds()/p.Seconds(), float64((d-p).Microseconds())/1000/n, n/d.Seconds())
	}
	fmt.Fprintf(&b, "\nThe deployment's runs wait for their dependencies (state waiting) and are released in the transaction\n"+
		"that ends the run they wait for; a plain job's runs are all ready at once, so they pipeline freely.\n")
	period := time.Duration(float64(*runTime) * float64(*factNodes) / float64(*loopSlots))
	fmt.Fprintf(&b, "\n## From a fact change to the node's run\n\n")
	fmt.Fprintf(&b, "A continuous job with `--facts-used os.release` on %d nodes (SQLite, a no-op backend taking %s per run, %d slots:\n"+
		"a pass over the fleet takes about %s). An inventory edit changes one random node's `os.release.full` (the job uses it)\n"+
		"or its `uptime` (it does not), %d times each, alternating; the time runs from the edit (the file's rename) to that\n"+
		"node's next run start, through the server's reload, the fact-change event and the bump.\n\n",
		*factNodes, *runTime, *loopSlots, period.Round(time.Millisecond), *edits)
	fmt.Fprintf(&b, "| edit | p50 s | p95 s | p99 s | max s |\n|---|---:|---:|---:|---:|\n")
	for _, k := range []struct {
		name string
		ds   []time.Duration
	}{{"a fact the job uses (os.release): moved to the front", lat.used}, {"a fact it does not use (uptime): its turn in the loop", lat.unused}} {
		fmt.Fprintf(&b, "| %s | **%.3f** | %.3f | %.3f | %.3f |\n", k.name, pctl(k.ds, 50).Seconds(), pctl(k.ds, 95).Seconds(),
			pctl(k.ds, 99).Seconds(), slices.Max(k.ds).Seconds())
	}
	fmt.Fprintf(&b, "\nRatio at p50, unused / used: **%.1fx**.\n", pctl(lat.unused, 50).Seconds()/pctl(lat.used, 50).Seconds())
	fmt.Fprintf(&b, "\n## Runs avoided by fingerprinting\n\n")
	fmt.Fprintf(&b, "A continuous job `cat STATE/$MUSTER_NODE` with `--fingerprint stdout` and an on-change command, run for real on\n"+
		"this machine (local transport) on %d nodes; in each of %d passes 1%% of the nodes' files change (after every node's\n"+
		"first result, which counts as a change and is left out). Acting on every result is the naive loop.\n\n", av.nodes, av.passes)
	fmt.Fprintf(&b, "| node-runs | results changed | actions run | actions avoided | naive loop's actions | ratio |\n|---:|---:|---:|---:|---:|---:|\n")
	ratio := 0.0
	if av.actions > 0 {
		ratio = float64(av.runs) / float64(av.actions)
	}
	fmt.Fprintf(&b, "| %d | %d | %d | **%d** | %d | **%.0fx** fewer |\n", av.runs, av.changes, av.actions, av.runs-av.actions, av.runs, ratio)
	fmt.Fprintf(&b, "\nEvery change was acted on exactly once: **%s** (%d changes, %d actions).\n",
		map[bool]string{true: "PASS", false: "FAIL"}[av.actions == av.changes], av.changes, av.actions)
	fmt.Fprintf(&b, "\nMachine: %d cores, %s; the benchmark, the server and PostgreSQL share them.\n", runtime.NumCPU(), procfs.CPUModel())
	check(os.WriteFile(*out, b.Bytes(), 0o644))
	fmt.Print(b.String())
}

type row struct {
	store         string
	deploy, plain []time.Duration
}

// measure starts a server on a fresh store and times either the
// deployment (deploy) or the plain jobs until every run succeeded.
func measure(ctx context.Context, bin, pgURL string, nodes, roles int, deploy bool) time.Duration {
	dir, err := os.MkdirTemp("", "muster-converge-")
	check(err)
	defer os.RemoveAll(dir)
	proj := filepath.Join(dir, "project")
	check(os.MkdirAll(filepath.Join(proj, "deploy"), 0o755))
	var inv strings.Builder
	inv.WriteString("groups:\n  - name: fleet\n    targets:\n")
	for i := range nodes {
		fmt.Fprintf(&inv, "      - {name: n%05d, uri: 127.0.0.1}\n", i)
	}
	check(os.WriteFile(filepath.Join(proj, "inventory.yaml"), []byte(inv.String()), 0o644))
	check(os.WriteFile(filepath.Join(proj, "muster-project.yaml"), []byte("name: converge\n"), 0o644))
	var dep strings.Builder
	dep.WriteString("name: chain\nroles:\n")
	for k := 1; k <= roles; k++ {
		fmt.Fprintf(&dep, "  r%d:\n    run: {command: \"true\"}\n    nodes: [fleet]\n", k)
		if k > 1 {
			fmt.Fprintf(&dep, "    requires: [r%d]\n", k-1)
		}
	}
	check(os.WriteFile(filepath.Join(proj, "deploy", "chain.yaml"), []byte(dep.String()), 0o644))

	data := filepath.Join(dir, "data")
	args := []string{"server", "--listen", "127.0.0.1:0", "--data-dir", data, "--project", proj, "--backend", "fake:0"}
	if pgURL != "" {
		db, err := sql.Open("pgx", pgURL)
		check(err)
		defer db.Close()
		schema := fmt.Sprintf("bench_converge_%d_%d", os.Getpid(), time.Now().UnixNano()%1e9)
		_, err = db.ExecContext(ctx, "CREATE SCHEMA "+schema)
		check(err)
		defer func() { _, _ = db.ExecContext(context.Background(), "DROP SCHEMA "+schema+" CASCADE") }()
		sep := "?"
		if strings.Contains(pgURL, "?") {
			sep = "&"
		}
		args = append(args, "--database", pgURL+sep+"search_path="+schema)
	}
	srv := exec.Command(bin, args...)
	var logBuf bytes.Buffer
	srv.Stderr = &lockedWriter{w: &logBuf}
	check(srv.Start())
	defer func() { _ = srv.Process.Kill(); _ = srv.Wait() }()
	url := ""
	for deadline := time.Now().Add(60 * time.Second); url == "" && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if m := apiLine.FindStringSubmatch(srv.Stderr.(*lockedWriter).String()); m != nil {
			url = m[1]
		}
	}
	if url == "" {
		log.Fatalf("the server did not start:\n%s", srv.Stderr.(*lockedWriter).String())
	}
	tok, err := os.ReadFile(filepath.Join(data, "admin.token"))
	check(err)
	cl, err := api.NewClient(url, strings.TrimSpace(string(tok)))
	check(err)
	env := append(os.Environ(), "MUSTER_SERVER="+url, "MUSTER_TOKEN="+strings.TrimSpace(string(tok)))
	start := time.Now()
	if deploy {
		cmd := exec.Command(bin, "deploy", "apply", "chain", "--project", proj)
		cmd.Env = env
		if b, err := cmd.CombinedOutput(); err != nil {
			log.Fatalf("deploy apply: %v\n%s", err, b)
		}
	} else {
		for k := range roles { // distinct commands: identical waiting work would merge into one run per node
			_, err := cl.Submit(ctx, api.SubmitRequest{Kind: muster.JobCommand, Targets: api.Targets{Spec: "fleet"},
				Spec: muster.JobSpec{Command: fmt.Sprintf("true role%d", k+1)}})
			check(err)
		}
	}
	want := nodes * roles
	for deadline := time.Now().Add(10 * time.Minute); ; {
		if time.Now().After(deadline) {
			log.Fatalf("the runs did not all succeed within 10 minutes")
		}
		st, err := cl.Stats(ctx)
		check(err)
		if st.Counts[muster.RunSucceeded] >= want {
			break
		}
		if n := st.Counts[muster.RunFailed] + st.Counts[muster.RunBlocked]; n > 0 {
			log.Fatalf("%d runs failed or blocked", n)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return time.Since(start)
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

func commit() string {
	b, err := exec.Command("git", "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(b))
}

func check(err error) {
	if err != nil {
		log.Fatal(err)
	}
}
