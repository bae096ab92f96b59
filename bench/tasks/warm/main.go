// Command warm runs a Bolt task on every inventory target several times in
// one process, as the muster CLI would (action.Runner over the ssh
// transport, executor fan-out), and measures each pass: wall time, client
// CPU (getrusage), SSH channels (every Transport.Exec is one session
// channel, counted by a wrapping transport) and, with -sshd-pid, the sshd
// CPU of the pass (see sshdCPU). Pass 1 connects and uploads the task
// (cold); later task passes reuse the open connections and the cached
// upload (warm). "command" passes run -command instead, on the same open
// connections, for comparison. The task cache is removed at the end
// (Runner.Cleanup), which is measured as its own pass.
//
// It prints one JSON object:
//
//	{"n":..,"concurrency":..,"passes":[{"kind":"task","wall_s":..,"cpu_s":..,"ok":..,"channels":..,"sshd_cpu_s":..},..]}
//
// Used by bench/tasks/run.sh.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/muster-run/muster"
	"github.com/muster-run/muster/internal/action"
	"github.com/muster-run/muster/internal/executor"
	"github.com/muster-run/muster/internal/inventory"
	"github.com/muster-run/muster/internal/task"
	"github.com/muster-run/muster/internal/transport/ssh"
)

// counting wraps a transport and counts Exec calls: one SSH session
// channel each.
type counting struct {
	muster.Transport
	n atomic.Int64
}

func (c *counting) Exec(ctx context.Context, t *muster.Target, cmd *muster.Command) (int, error) {
	c.n.Add(1)
	return c.Transport.Exec(ctx, t, cmd)
}

type pass struct {
	Kind      string  `json:"kind"`
	WallS     float64 `json:"wall_s"`
	CPUS      float64 `json:"cpu_s"`
	OK        int     `json:"ok"`
	Channels  int64   `json:"channels"`
	SshdCPUS  float64 `json:"sshd_cpu_s"`
	SshdProcs int     `json:"sshd_procs"`
	// LogSessions and LogConns count sshd log lines ("Starting session:",
	// "Connection from") written during the pass, with -sshd-log.
	LogSessions int    `json:"log_sessions"`
	LogConns    int    `json:"log_conns"`
	FirstErr    string `json:"first_error,omitempty"`
}

func cpuNow() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	tv := func(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
	return tv(ru.Utime) + tv(ru.Stime)
}

const clkTck = 100 // CLK_TCK on Linux

// sshdCPU returns the CPU seconds of the sshd listener pid and every live
// descendant: each live process's own run time (/proc/PID/schedstat, in ns)
// plus the CPU of its reaped children (cutime+cstime in /proc/PID/stat). A
// reaped process's CPU is in its parent's cutime/cstime only, so nothing is
// counted twice. Live processes are read from schedstat because their
// utime/stime in /proc/PID/stat lag badly on this kernel (measured: 20 open
// connections showed 11 ticks in stat, 35 in schedstat, 43 once they had
// closed and been reaped). This includes the per-connection sshd processes
// of connections that are still open, which the listener's own counters only
// see once they exit. It also returns how many processes it summed.
func sshdCPU(root int) (float64, int) {
	if root <= 0 {
		return 0, 0
	}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return 0, 0
	}
	type proc struct {
		ppid int
		cpu  float64
	}
	procs := map[int]proc{}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		ss, err := os.ReadFile(filepath.Join("/proc", e.Name(), "schedstat"))
		if err != nil {
			continue
		}
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		// f[0] is state (field 3); ppid is field 4, cutime and cstime fields 16 and 17.
		if len(f) < 15 {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		var ticks int64
		for _, k := range f[13:15] {
			v, _ := strconv.ParseInt(k, 10, 64)
			ticks += v
		}
		var ns int64
		if sf := strings.Fields(string(ss)); len(sf) > 0 {
			ns, _ = strconv.ParseInt(sf[0], 10, 64)
		}
		procs[pid] = proc{ppid, float64(ns)/1e9 + float64(ticks)/clkTck}
	}
	var total float64
	n := 0
	for pid, p := range procs {
		for q, depth := pid, 0; depth < 64; depth++ {
			if q == root {
				total += p.cpu
				n++
				break
			}
			pp, ok := procs[q]
			if !ok || pp.ppid == 0 {
				break
			}
			q = pp.ppid
		}
	}
	return total, n
}

func logSize(path string) int64 {
	if path == "" {
		return 0
	}
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// logCount counts session and connection lines in the log after off.
func logCount(path string, off int64) (sessions, conns int) {
	if path == "" {
		return 0, 0
	}
	f, err := os.Open(path)
	if err != nil {
		return 0, 0
	}
	defer f.Close()
	b, err := io.ReadAll(io.NewSectionReader(f, off, 1<<40))
	if err != nil {
		return 0, 0
	}
	s := string(b)
	return strings.Count(s, "Starting session: "), strings.Count(s, "Connection from ")
}

func main() {
	invPath := flag.String("i", "inventory.yaml", "Bolt v2 inventory")
	modulepath := flag.String("modulepath", "modules", "module path (colon-separated)")
	taskName := flag.String("task", "", "task to run, mod::name")
	concurrency := flag.Int("concurrency", 100, "targets in flight")
	passList := flag.String("passes", "task,task,command,task,command", "comma-separated passes: task or command")
	line := flag.String("command", "true", "command line for command passes")
	sshdPid := flag.Int("sshd-pid", 0, "sshd listener pid, to measure sshd CPU per pass")
	sshdLog := flag.String("sshd-log", "", "sshd log file (LogLevel VERBOSE), to cross-check channels per pass")
	settle := flag.Duration("settle", 300*time.Millisecond, "pause before and after each pass's sshd CPU reading")
	timeout := flag.Duration("timeout", 20*time.Minute, "overall timeout")
	flag.Parse()

	fail := func(code int, f string, a ...any) {
		fmt.Fprintf(os.Stderr, "warm: "+f+"\n", a...)
		os.Exit(code)
	}
	idx, err := task.Find(filepath.SplitList(*modulepath))
	if err != nil {
		fail(2, "%v", err)
	}
	tk, err := idx.Get(*taskName)
	if err != nil {
		fail(2, "%v", err)
	}
	raw, err := task.ParseCLIParams(flag.Args(), "", nil, tk.Metadata)
	if err != nil {
		fail(2, "%v", err)
	}
	params, err := tk.Metadata.Validate(tk.Name, raw)
	if err != nil {
		fail(2, "%v", err)
	}
	inv, err := inventory.Load(*invPath, inventory.Options{})
	if err != nil {
		fail(2, "%v", err)
	}
	targets := inv.Targets()

	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	sshTr := ssh.New(ssh.Options{})
	defer sshTr.Close()
	ct := &counting{Transport: sshTr}
	r := &action.Runner{Transports: map[string]muster.Transport{"ssh": ct}}
	tr := &action.TaskRun{Task: tk, Index: idx, Params: params, Secrets: tk.Metadata.SensitiveValues(params)}

	measure := func(kind string, body func() (ok int, firstErr string)) pass {
		time.Sleep(*settle)
		s0, _ := sshdCPU(*sshdPid)
		off := logSize(*sshdLog)
		ch0 := ct.n.Load()
		c0, t0 := cpuNow(), time.Now()
		ok, firstErr := body()
		p := pass{Kind: kind, WallS: time.Since(t0).Seconds(), CPUS: cpuNow() - c0, OK: ok,
			Channels: ct.n.Load() - ch0, FirstErr: firstErr}
		time.Sleep(*settle)
		s1, procs := sshdCPU(*sshdPid)
		p.SshdCPUS = s1 - s0
		p.SshdProcs = procs
		p.LogSessions, p.LogConns = logCount(*sshdLog, off)
		return p
	}
	fanout := func(object string, fn executor.Func) (int, string) {
		res := executor.Run(ctx, targets, executor.Options{Concurrency: *concurrency}, object, object, fn)
		ok, first := 0, ""
		for _, x := range res {
			if x.OK() {
				ok++
			} else if first == "" {
				first = x.Target + ": " + x.Error.Error()
			}
		}
		return ok, first
	}

	var all []pass
	for _, kind := range strings.Split(*passList, ",") {
		switch strings.TrimSpace(kind) {
		case "task":
			all = append(all, measure("task", func() (int, string) {
				return fanout(tk.Name, func(ctx context.Context, t *muster.Target) *muster.Result {
					return r.Task(ctx, t, tr, action.Options{})
				})
			}))
		case "command":
			all = append(all, measure("command", func() (int, string) {
				return fanout("command", func(ctx context.Context, t *muster.Target) *muster.Result {
					return r.Command(ctx, t, *line, action.Options{})
				})
			}))
		default:
			fail(2, "unknown pass %q", kind)
		}
	}
	all = append(all, measure("cleanup", func() (int, string) {
		r.Cleanup(ctx)
		return len(targets), ""
	}))
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	out := map[string]any{
		"n":           len(targets),
		"concurrency": *concurrency,
		"task":        tk.Name,
		"command":     *line,
		"passes":      all,
		"max_rss_kib": ru.Maxrss,
	}
	if err := json.NewEncoder(os.Stdout).Encode(out); err != nil {
		os.Exit(1)
	}
}
