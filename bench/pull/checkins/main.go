// Command checkins is the pull-mode check-in load benchmark: it starts one
// `muster server --agent-listen` (SQLite, on 127.0.0.1), enrolls -agents
// simulated agents through the real protocol (each its own ed25519 key,
// certificate and kept-alive mTLS connection, all in this process), then
// has them check in, spread evenly, at -rate check-ins per second for
// -window, and reports check-in latency p50/p95/p99, the server's CPU per
// check-in and its RSS, and how much the database grew during the idle
// check-ins (the goal is nothing: an idle check-in writes nothing). The
// pull.yaml matches no node, so every check-in is idle.
//
// With -postgres URL (or $MUSTER_BENCH_POSTGRES_URL) it measures a second
// server on that PostgreSQL database, in a fresh schema, in the same run.
//
//	go run ./bench/pull/checkins -muster bin/muster -agents 10000 -rate 200 -window 60s -out bench/results/pull-checkins.md
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"database/sql"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" driver, for the PostgreSQL row counts

	"github.com/muster-run/muster/internal/api"
	"github.com/muster-run/muster/internal/checkin"
	"github.com/muster-run/muster/internal/pki"
	"github.com/muster-run/muster/internal/testkit/procfs"
)

var (
	agentsLine = regexp.MustCompile(`agents=https://(\S+) ca_fingerprint=(\S+)`)
	apiLine    = regexp.MustCompile(`msg="muster server started".* api=(\S+)`)
)

type agent struct {
	name string
	hc   *http.Client
}

// result is one backend's measurement: the idle window, then the loaded
// one (every node due, runs admitted at the backend's rate, each reported
// at once by its simulated agent).
type result struct {
	backend      string
	agents       int
	enrollTook   time.Duration
	rss          int64 // the server's, after the idle window
	idle, loaded phase
	runRate      float64
}

// phase is one measured window's check-ins.
type phase struct {
	checkIns, errs, runs int
	p50, p95, p99        time.Duration
	cpuPerCheckIn        float64 // ms
	written              int64   // what the database wrote during the window, in unit
	unit                 string
}

func main() {
	bin := flag.String("muster", "bin/muster", "the muster binary")
	n := flag.Int("agents", 10000, "simulated agents")
	rate := flag.Float64("rate", 200, "check-ins per second, all agents together")
	window := flag.Duration("window", 60*time.Second, "measured window")
	runRate := flag.Float64("run-rate", 20, "the backend's runs per second in the second window (every node due)")
	pgURL := flag.String("postgres", os.Getenv("MUSTER_BENCH_POSTGRES_URL"),
		"also measure a server on this PostgreSQL database (a fresh schema in it; default $MUSTER_BENCH_POSTGRES_URL)")
	out := flag.String("out", "bench/results/pull-checkins.md", "report path")
	flag.Parse()
	ctx := context.Background()
	results := []result{measure(ctx, *bin, "", *n, *rate, *runRate, *window)}
	if *pgURL != "" {
		results = append(results, measure(ctx, *bin, *pgURL, *n, *rate, *runRate, *window))
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "# Pull mode: check-ins under load\n\n")
	fmt.Fprintf(&b, "`go run ./bench/pull/checkins`, %s. One `muster server --agent-listen` per row, and %d simulated agents in one\n"+
		"process, each with its own ed25519 key, certificate and kept-alive mTLS connection, enrolled through the protocol;\n"+
		"then %.0f check-ins per second spread over all agents for %s, each answered at once (no long poll). No runs\n"+
		"entry matches the agents, so every check-in is idle: its answer is \"not now, come back at ...\". Database writes\n"+
		"are the SQLite files' growth, or on PostgreSQL the rows inserted, updated and deleted in muster's schema\n"+
		"(pg_stat_user_tables) during the window.\n\n",
		time.Now().UTC().Format("2006-01-02"), *n, *rate, *window)
	fmt.Fprintf(&b, "| store | agents | check-ins | errors | p50 ms | p95 ms | p99 ms | server CPU ms / check-in | server RSS MiB | database writes during the window | enrollment |\n")
	fmt.Fprintf(&b, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|\n")
	verdict, writes := "PASS", "PASS"
	for _, r := range results {
		i := r.idle
		fmt.Fprintf(&b, "| %s | %d | %d | %d | %.2f | %.2f | **%.2f** | %.3f | %.0f | %+d %s | %d in %.1f s |\n",
			r.backend, r.agents, i.checkIns, i.errs, ms(i.p50), ms(i.p95), ms(i.p99), i.cpuPerCheckIn, float64(r.rss)/(1<<20),
			i.written, i.unit, r.agents, r.enrollTook.Seconds())
		if i.p99 >= 100*time.Millisecond || i.errs > 0 {
			verdict = "FAIL"
		}
		if i.written != 0 {
			writes = "FAIL"
		}
	}
	fmt.Fprintf(&b, "\nThen every node is made due (pull.yaml's runs entry matches them, reloaded without a restart) and the\n"+
		"backend takes %g runs per second: the same check-in load for %s, each run reported at once by its simulated agent.\n\n",
		results[0].runRate, *window)
	fmt.Fprintf(&b, "| store | check-ins | errors | p50 ms | p95 ms | p99 ms | server CPU ms / check-in | runs | runs/s (backend rate %g) | database writes per run |\n", results[0].runRate)
	fmt.Fprintf(&b, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|\n")
	keeps := "PASS"
	for _, r := range results {
		l := r.loaded
		got := float64(l.runs) / window.Seconds()
		perRun := "-"
		if l.runs > 0 {
			perRun = fmt.Sprintf("%.1f %s", float64(l.written)/float64(l.runs), l.unit)
		}
		fmt.Fprintf(&b, "| %s | %d | %d | %.2f | %.2f | **%.2f** | %.3f | %d | **%.1f** | %s |\n", r.backend, l.checkIns, l.errs,
			ms(l.p50), ms(l.p95), ms(l.p99), l.cpuPerCheckIn, l.runs, got, perRun)
		if l.p99 >= 100*time.Millisecond || l.errs > 0 {
			verdict = "FAIL"
		}
		if got < 0.9*r.runRate || got > 1.1*r.runRate {
			keeps = "FAIL"
		}
	}
	fmt.Fprintf(&b, "\n- Goal: check-in p99 under 100 ms: **%s**. Goal: no database write per idle check-in: **%s**. "+
		"The scheduler keeps the backend's rate (within 10%%): **%s**.\n", verdict, writes, keeps)
	fmt.Fprintf(&b, "- The client (this benchmark), the server and PostgreSQL share the machine's %d cores: %s.\n", runtime.NumCPU(), procfs.CPUModel())
	check(os.WriteFile(*out, b.Bytes(), 0o644))
	fmt.Print(b.String())
}

// measure starts a server on database ("" for SQLite in its data
// directory, else a fresh schema of that PostgreSQL database), enrolls n
// agents and measures their idle check-ins.
func measure(ctx context.Context, bin, database string, n int, rate, runRate float64, window time.Duration) result {
	dir, err := os.MkdirTemp("", "muster-checkins-")
	check(err)
	defer os.RemoveAll(dir)
	proj := filepath.Join(dir, "project")
	check(os.MkdirAll(proj, 0o755))
	check(os.WriteFile(filepath.Join(proj, "pull.yaml"), []byte(`interval: 30m
backends:
  - {name: local, max_running: 100}
runs:
  - match: {glob: "no-node-matches-this*"}
    command: "true"
`), 0o644))
	data := filepath.Join(dir, "data")
	args := []string{"server", "--listen", "127.0.0.1:0", "--data-dir", data, "--project", proj, "--agent-listen", "127.0.0.1:0"}
	res := result{backend: "SQLite", agents: n, runRate: runRate}
	var pg *sql.DB
	schema := ""
	if database != "" {
		res.backend = "PostgreSQL"
		pg, err = sql.Open("pgx", database)
		check(err)
		defer pg.Close()
		schema = fmt.Sprintf("bench_checkins_%d", os.Getpid())
		_, err = pg.ExecContext(ctx, "CREATE SCHEMA "+schema)
		check(err)
		defer func() { _, _ = pg.ExecContext(context.Background(), "DROP SCHEMA "+schema+" CASCADE") }()
		args = append(args, "--database", withSearchPath(database, schema))
	}
	srv := exec.Command(bin, args...)
	stderr, err := srv.StderrPipe()
	check(err)
	check(srv.Start())
	defer func() { _ = srv.Process.Kill(); _ = srv.Wait() }()
	addr, apiURL := "", ""
	sc := bufio.NewScanner(stderr)
	for sc.Scan() && (addr == "" || apiURL == "") {
		if m := agentsLine.FindStringSubmatch(sc.Text()); m != nil {
			addr = m[1]
		}
		if m := apiLine.FindStringSubmatch(sc.Text()); m != nil {
			apiURL = m[1]
		}
	}
	go func() { // keep draining the log
		for sc.Scan() {
		}
	}()
	tok, err := os.ReadFile(filepath.Join(data, "admin.token"))
	check(err)
	cl, err := api.NewClient(apiURL, strings.TrimSpace(string(tok)))
	check(err)
	et, err := cl.CreateEnrollToken(ctx, api.EnrollTokenRequest{Name: "bench", Uses: n, Certnames: "sim*.bench"})
	check(err)
	ca, err := cl.CA(ctx)
	check(err)
	caCert, err := pki.ParseCertPEM([]byte(ca.Certificate))
	check(err)

	log.Printf("%s: enrolling %d agents", res.backend, n)
	t0 := time.Now()
	agents := make([]*agent, n)
	var wg sync.WaitGroup
	work := make(chan int)
	for range 32 {
		wg.Go(func() {
			for i := range work {
				agents[i] = enroll(ctx, addr, caCert.Raw, et.Secret, fmt.Sprintf("sim%05d.bench", i))
			}
		})
	}
	for i := range n {
		work <- i
	}
	close(work)
	wg.Wait()
	res.enrollTook = time.Since(t0)
	log.Printf("enrolled in %s; warming every agent's connection", res.enrollTook.Round(time.Millisecond))
	runAll(ctx, agents, 64, func(a *agent) { _, _ = checkIn(ctx, a) })

	wal := filepath.Join(data, "muster.db-wal")
	footprint := func() (int64, string) {
		if pg != nil {
			time.Sleep(time.Second) // backends report their statistics at transaction end, at most once a second
			return rowWrites(ctx, pg, schema), "rows"
		}
		return size(wal) + size(filepath.Join(data, "muster.db")), "B of SQLite files"
	}
	log.Printf("measuring %s at %.0f check-ins/s", window, rate)
	res.idle = runWindow(ctx, srv.Process.Pid, agents, rate, window, footprint)
	res.rss = rssOf(srv.Process.Pid)

	// Every node due: the runs entry matches them all, at the backend's rate.
	check(os.WriteFile(filepath.Join(proj, "pull.yaml"), []byte(fmt.Sprintf(`interval: 30m
backends:
  - {name: local, max_running: 1000, rate: %g}
runs:
  - match: {glob: "sim*"}
    command: "true"
`, runRate)), 0o644))
	time.Sleep(3 * time.Second) // the server's project watch reloads it
	res.loaded = runWindow(ctx, srv.Process.Pid, agents, rate, window, footprint)
	return res
}

// runWindow drives check-ins at rate for window, reporting every run an
// agent is handed at once (an idle window hands out none), and measures
// them; footprint returns the database's size (or rows written) so far,
// and its unit.
func runWindow(ctx context.Context, pid int, agents []*agent, rate float64, window time.Duration, footprint func() (int64, string)) phase {
	var ph phase
	var mu sync.Mutex
	var wg sync.WaitGroup
	var lat []time.Duration
	before, unit := footprint()
	cpuBefore := cpuOf(pid)
	interval := time.Duration(float64(time.Second) / rate)
	deadline := time.Now().Add(window)
	sem := make(chan struct{}, 512)
	next := time.Now()
	for i := 0; time.Now().Before(deadline); i++ {
		next = next.Add(interval)
		time.Sleep(time.Until(next))
		a := agents[i%len(agents)]
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			start := time.Now()
			var resp checkin.CheckInResponse
			err := post(ctx, a.hc, baseAddr, checkin.PathCheckIn, checkin.CheckInRequest{Version: checkin.Version}, &resp)
			d := time.Since(start)
			ran := false
			if err == nil && resp.Run != nil {
				var rr checkin.ReportResponse
				err = post(ctx, a.hc, baseAddr, checkin.PathReport, checkin.Report{Version: checkin.Version, RunID: resp.Run.RunID,
					Attempt: resp.Run.Attempt, Started: start, Duration: time.Millisecond}, &rr)
				ran = err == nil
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				ph.errs++
				return
			}
			lat = append(lat, d)
			if ran {
				ph.runs++
			}
		})
	}
	wg.Wait()
	cpu := cpuOf(pid) - cpuBefore
	after, _ := footprint()
	slices.Sort(lat)
	pct := func(p float64) time.Duration {
		if len(lat) == 0 {
			return 0
		}
		return lat[min(len(lat)-1, max(0, int(float64(len(lat))*p/100+0.5)-1))]
	}
	ph.checkIns, ph.p50, ph.p95, ph.p99 = len(lat), pct(50), pct(95), pct(99)
	if len(lat) > 0 {
		ph.cpuPerCheckIn = cpu / float64(len(lat)) * 1000
	}
	ph.written, ph.unit = after-before, unit
	return ph
}

// rowWrites is the rows inserted, updated and deleted in schema's tables
// so far (0 without a database).
func rowWrites(ctx context.Context, pg *sql.DB, schema string) int64 {
	if pg == nil {
		return 0
	}
	var n int64
	check(pg.QueryRowContext(ctx, `SELECT COALESCE(SUM(n_tup_ins + n_tup_upd + n_tup_del), 0) FROM pg_stat_user_tables
		WHERE schemaname = $1`, schema).Scan(&n))
	return n
}

// withSearchPath adds search_path=schema to a postgres:// URL.
func withSearchPath(url, schema string) string {
	sep := "?"
	if strings.Contains(url, "?") {
		sep = "&"
	}
	return url + sep + "search_path=" + schema
}

// cpuOf is pid's CPU time in seconds (CLK_TCK is 100 on Linux).
func cpuOf(pid int) float64 {
	p, err := procfs.Read(pid)
	if err != nil {
		return 0
	}
	return float64(p.Utime+p.Stime) / 100
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func size(p string) int64 {
	fi, err := os.Stat(p)
	if err != nil {
		return 0
	}
	return fi.Size()
}

func rssOf(pid int) int64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}

// enroll makes a key and gets its certificate signed through the protocol.
func enroll(ctx context.Context, addr string, caDER []byte, token, name string) *agent {
	key, err := pki.NewKey()
	check(err)
	csr, err := pki.NewCSR(key, name)
	check(err)
	cfg, err := pki.ClientTLSConfig(caDER, tls.Certificate{})
	check(err)
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}, Timeout: time.Minute}
	var resp checkin.CertResponse
	check(post(ctx, hc, addr, checkin.PathEnroll, checkin.EnrollRequest{Version: checkin.Version, Token: token, CSR: csr}, &resp))
	hc.CloseIdleConnections()
	if resp.State != "signed" {
		log.Fatalf("%s: %s %s", name, resp.State, resp.Message)
	}
	tc, err := pki.TLSCertificate(resp.Cert, key)
	check(err)
	cfg, err = pki.ClientTLSConfig(caDER, tc)
	check(err)
	return &agent{name: name, hc: &http.Client{Transport: &http.Transport{TLSClientConfig: cfg, MaxIdleConnsPerHost: 1,
		IdleConnTimeout: 10 * time.Minute}, Timeout: time.Minute}}
}

var baseAddr string

func checkIn(ctx context.Context, a *agent) (time.Duration, error) {
	start := time.Now()
	var resp checkin.CheckInResponse
	err := post(ctx, a.hc, baseAddr, checkin.PathCheckIn, checkin.CheckInRequest{Version: checkin.Version}, &resp)
	return time.Since(start), err
}

func post(ctx context.Context, hc *http.Client, addr, path string, in, out any) error {
	if addr != "" {
		baseAddr = addr
	}
	body, err := json.Marshal(in)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "https://"+baseAddr+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		var b bytes.Buffer
		_, _ = b.ReadFrom(resp.Body)
		return fmt.Errorf("%s: %s", resp.Status, b.String())
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

// runAll calls fn for every agent, par at a time.
func runAll(_ context.Context, agents []*agent, par int, fn func(*agent)) {
	var wg sync.WaitGroup
	ch := make(chan *agent)
	for range par {
		wg.Go(func() {
			for a := range ch {
				fn(a)
			}
		})
	}
	for _, a := range agents {
		ch <- a
	}
	close(ch)
	wg.Wait()
}

func check(err error) {
	if err != nil {
		log.Fatal(err)
	}
}
