// Command warm measures muster's client CPU per command on cold and on
// already-open SSH connections. The CLI runs one action per process, so this
// drives the ssh transport in-process: it runs the same command on every
// inventory target several times at a fixed concurrency, reading
// getrusage(RUSAGE_SELF) around each pass. Pass 1 connects (cold); later
// passes reuse the pooled connections (warm).
//
// It prints one JSON object:
//
//	{"n":1000,"concurrency":100,"cold":{"wall_s":..,"cpu_s":..,"ok":1000},"warm":{...},"passes":[...],"max_rss_kib":..}
//
// "warm" is the mean over passes 2..N. Used by bench/fanout/run.sh.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/muster-run/muster"
	"github.com/muster-run/muster/internal/inventory"
	"github.com/muster-run/muster/internal/transport/ssh"
)

type pass struct {
	WallS    float64 `json:"wall_s"`
	CPUS     float64 `json:"cpu_s"`
	OK       int     `json:"ok"`
	FirstErr string  `json:"first_error,omitempty"`
}

func cpuNow() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	tv := func(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
	return tv(ru.Utime) + tv(ru.Stime)
}

func maxRSSKiB() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return int64(ru.Maxrss)
}

func runPass(ctx context.Context, tr muster.Transport, targets []*muster.Target, line string, concurrency int) pass {
	var ok atomic.Int64
	var firstErr atomic.Value
	sem := make(chan struct{}, concurrency)
	var wg sync.WaitGroup
	c0, t0 := cpuNow(), time.Now()
	for _, t := range targets {
		sem <- struct{}{}
		wg.Add(1)
		go func(t *muster.Target) {
			defer func() { <-sem; wg.Done() }()
			code, err := tr.Exec(ctx, t, &muster.Command{Line: line})
			switch {
			case err != nil:
				firstErr.CompareAndSwap(nil, t.Name+": "+err.Error())
			case code != 0:
				firstErr.CompareAndSwap(nil, fmt.Sprintf("%s: exit code %d", t.Name, code))
			default:
				ok.Add(1)
			}
		}(t)
	}
	wg.Wait()
	p := pass{WallS: time.Since(t0).Seconds(), CPUS: cpuNow() - c0, OK: int(ok.Load())}
	if e, _ := firstErr.Load().(string); e != "" {
		p.FirstErr = e
	}
	return p
}

func main() {
	invPath := flag.String("i", "inventory.yaml", "Bolt v2 inventory")
	concurrency := flag.Int("concurrency", 100, "commands in flight")
	passes := flag.Int("passes", 3, "passes over all targets (>= 2); pass 1 is cold")
	line := flag.String("command", "true", "command line to run")
	timeout := flag.Duration("timeout", 10*time.Minute, "overall timeout")
	flag.Parse()
	if *passes < 2 {
		*passes = 2
	}

	inv, err := inventory.Load(*invPath, inventory.Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, "warm:", err)
		os.Exit(2)
	}
	targets := inv.Targets()
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()

	tr := ssh.New(ssh.Options{})
	defer tr.Close()

	var all []pass
	for i := 0; i < *passes; i++ {
		all = append(all, runPass(ctx, tr, targets, *line, *concurrency))
	}
	warm := pass{OK: len(targets)}
	for _, p := range all[1:] {
		warm.WallS += p.WallS / float64(len(all)-1)
		warm.CPUS += p.CPUS / float64(len(all)-1)
		if p.OK < warm.OK {
			warm.OK = p.OK
		}
		if warm.FirstErr == "" {
			warm.FirstErr = p.FirstErr
		}
	}
	out := map[string]any{
		"n":           len(targets),
		"concurrency": *concurrency,
		"cold":        all[0],
		"warm":        warm,
		"passes":      all,
		"max_rss_kib": maxRSSKiB(),
	}
	if err := json.NewEncoder(os.Stdout).Encode(out); err != nil {
		os.Exit(1)
	}
}
