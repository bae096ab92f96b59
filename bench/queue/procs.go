package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/muster-run/muster/internal/testkit/procfs"
)

// procs.go: the muster server processes the benchmark starts, and CPU
// accounting from /proc.

// server is a muster server child process.
type server struct {
	cmd  *exec.Cmd
	url  string
	log  string // log file
	done chan struct{}
	exit error
}

// startServer starts bin argv with stderr copied to logPath, and waits for
// its "started" line.
func startServer(ctx context.Context, bin string, argv []string, logPath string) (*server, error) {
	lf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, argv...)
	cmd.Stdout = lf
	// Killed with us if we die without cleaning up.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		lf.Close()
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		lf.Close()
		return nil, err
	}
	s := &server{cmd: cmd, log: logPath, done: make(chan struct{})}
	urls := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			fmt.Fprintln(lf, sc.Text())
			if m := apiLine.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case urls <- m[1]:
				default:
				}
			}
		}
		_, _ = io.Copy(lf, stderr)
		s.exit = cmd.Wait()
		lf.Close()
		close(s.done)
	}()
	select {
	case s.url = <-urls:
		return s, nil
	case <-s.done:
		return nil, fmt.Errorf("muster server exited at start (%v): %s", s.exit, tail(logPath))
	case <-ctx.Done():
		_ = s.stop()
		return nil, ctx.Err()
	case <-time.After(60 * time.Second):
		_ = s.stop()
		return nil, fmt.Errorf("muster server did not start within 60s: %s", tail(logPath))
	}
}

// stop sends SIGTERM and waits (SIGKILL after 60 s). An exit other than a
// clean one is an error.
func (s *server) stop() error {
	select {
	case <-s.done:
		return nil
	default:
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
		if s.exit != nil {
			return fmt.Errorf("muster server pid %d: %v: %s", s.cmd.Process.Pid, s.exit, tail(s.log))
		}
		return nil
	case <-time.After(60 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
		return fmt.Errorf("muster server pid %d did not stop within 60s of SIGTERM", s.cmd.Process.Pid)
	}
}

// warnings counts WARN and ERROR lines in the server's log.
func (s *server) warnings() (int, []string) {
	b, err := os.ReadFile(s.log)
	if err != nil {
		return 0, nil
	}
	n, sample := 0, []string(nil)
	for line := range strings.SplitSeq(string(b), "\n") {
		if strings.Contains(line, "level=WARN") || strings.Contains(line, "level=ERROR") {
			n++
			if len(sample) < 5 {
				sample = append(sample, truncate(line, 300))
			}
		}
	}
	return n, sample
}

func tail(path string) string {
	b, _ := os.ReadFile(path)
	s := strings.TrimSpace(string(b))
	if len(s) > 2000 {
		s = "..." + s[len(s)-2000:]
	}
	return s
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// ---------------------------------------------------------------- CPU accounting

// clkTck is USER_HZ, 100 on every Linux architecture Go supports.
const clkTck = 100

type cpuSample struct {
	at       time.Time
	servers  []int64 // ticks
	postgres int64
	driver   time.Duration
	busy     int64
	irq      int64
	steal    int64
}

func sampleCPU(servers []*server, pgPID int) cpuSample {
	s := cpuSample{at: time.Now()}
	for _, sv := range servers {
		u, _, _ := procTicks(sv.cmd.Process.Pid)
		s.servers = append(s.servers, u)
	}
	if pgPID > 0 {
		// The postmaster's own time and that of its exited children, plus
		// every live child (backends, WAL writer, checkpointer...).
		self, kids, _ := procTicks(pgPID)
		s.postgres = self + kids
		for _, c := range procfs.Children(pgPID) {
			u, _, _ := procTicks(c)
			s.postgres += u
		}
	}
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		s.driver = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	s.busy, s.irq, s.steal = busyTicks()
	return s
}

func (b cpuSample) sub(a cpuSample) CPU {
	sec := func(t int64) float64 { return float64(t) / clkTck }
	c := CPU{Wall: b.at.Sub(a.at).Seconds(), Postgres: sec(b.postgres - a.postgres), Driver: b.driver.Seconds() - a.driver.Seconds(),
		Busy: sec(b.busy - a.busy), IRQ: sec(b.irq - a.irq), Steal: sec(b.steal - a.steal), Cores: numCPU()}
	sum := c.Postgres + c.Driver
	for i := range b.servers {
		v := sec(b.servers[i] - a.servers[i])
		c.Servers = append(c.Servers, v)
		sum += v
	}
	c.Other = max(0, c.Busy-sum)
	return c
}

// procTicks returns utime+stime and cutime+cstime of pid.
func procTicks(pid int) (self, children int64, err error) {
	p, err := procfs.Read(pid)
	return p.Utime + p.Stime, p.CUtime + p.CStime, err
}

// busyTicks is the machine's busy time (every CPU state but idle and
// iowait), and the part of it spent in interrupts (irq, softirq: loopback
// networking, mostly not charged to any process) and stolen by the host.
func busyTicks() (busy, irq, steal int64) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return 0, 0, 0
	}
	v := func(k int) int64 { n, _ := strconv.ParseInt(f[k], 10, 64); return n }
	// user nice system idle iowait irq softirq steal
	return v(1) + v(2) + v(3) + v(6) + v(7) + v(8), v(6) + v(7), v(8)
}

func numCPU() int {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	n := 0
	for line := range strings.SplitSeq(string(b), "\n") {
		if strings.HasPrefix(line, "cpu") && len(line) > 3 && line[3] >= '0' && line[3] <= '9' {
			n++
		}
	}
	return n
}

// ---------------------------------------------------------------- PostgreSQL
