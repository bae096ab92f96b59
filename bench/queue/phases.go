package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/muster-run/muster"
	"github.com/muster-run/muster/internal/api"
)

// phases.go: the two measurements, throughput and enqueue-to-start latency.

func throughput(ctx context.Context, o options, tag string, clients []*api.Client, servers []*server, pg *pgAdmin) (*Throughput, error) {
	total := o.jobs * o.nodes
	logf("%s: throughput: %d jobs x %d nodes = %d runs, %d submitters, %d server(s), --slots %d --claim-batch %d",
		tag, o.jobs, o.nodes, total, o.submitters, len(servers), o.slots, o.batch)
	if pg != nil && o.pgStat {
		if err := pg.resetStats(ctx); err != nil {
			return nil, err
		}
	}
	var pgBefore pgCounters
	if pg != nil && o.pgStat {
		var err error
		if pgBefore, err = pg.counters(ctx); err != nil {
			return nil, err
		}
	}
	cpu0 := sampleCPU(servers, o.pgPID)

	ids := make([]int64, o.jobs)
	var mu sync.Mutex
	var submitErr error
	var lastAck time.Time
	next := make(chan int, o.jobs)
	for i := range o.jobs {
		next <- i
	}
	close(next)
	var wg sync.WaitGroup
	t0 := time.Now()
	for range o.submitters {
		wg.Go(func() {
			for i := range next {
				c := clients[i%len(clients)]
				r, err := c.Submit(ctx, api.SubmitRequest{Kind: muster.JobCommand,
					Targets: api.Targets{Spec: "nodes"},
					Spec:    muster.JobSpec{Command: fmt.Sprintf("true # queue bench job %d", i)}})
				now := time.Now()
				mu.Lock()
				if err == nil && len(r.Runs)-len(r.Coalesced) != o.nodes {
					err = fmt.Errorf("job %d: %d new runs (%d coalesced), want %d", r.Job.ID, len(r.Runs)-len(r.Coalesced),
						len(r.Coalesced), o.nodes)
				}
				if err != nil && submitErr == nil {
					submitErr = err
				}
				ids[i] = r.Job.ID
				if now.After(lastAck) {
					lastAck = now
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if submitErr != nil {
		return nil, submitErr
	}
	logf("%s: submitted in %.2fs", tag, lastAck.Sub(t0).Seconds())

	// Poll the stats until every run is final.
	var st api.StatsView
	deadline := t0.Add(o.timeout)
	for {
		var err error
		st, err = clients[0].Stats(ctx)
		if err != nil {
			return nil, err
		}
		final := st.Counts[muster.RunSucceeded] + st.Counts[muster.RunFailed] + st.Counts[muster.RunCancelled]
		if final >= total && st.Counts[muster.RunPending]+st.Counts[muster.RunRunning]+
			st.Counts[muster.RunScheduled]+st.Counts[muster.RunRetrying] == 0 {
			break
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("not drained after %s: %v", o.timeout, st.Counts)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	observed := time.Now()
	cpu1 := sampleCPU(servers, o.pgPID)
	t := &Throughput{Runs: total, ObservedSeconds: observed.Sub(t0).Seconds(), SubmitSeconds: lastAck.Sub(t0).Seconds(),
		StatsFinished1m: st.Finished.M1, StatsThroughput1m: st.Throughput.M1, StatsWait: st.Wait,
		CPU: cpu1.sub(cpu0)}
	if pg != nil && o.pgStat {
		// pg_stat_statements is up to date at once; the cumulative
		// statistics (pg_stat_database, pg_stat_wal) only once every backend
		// has flushed its pending counts: within a second of its next
		// transaction, or after 10 s idle (PGSTAT_IDLE_INTERVAL).
		t.PG = &PGStats{}
		var err error
		if t.PG.ExecMS, t.PG.Top, err = pg.topStatements(ctx, 8); err != nil {
			return nil, err
		}
		logf("%s: waiting 11 s for PostgreSQL's cumulative statistics", tag)
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(11 * time.Second):
		}
		after, err := pg.counters(ctx)
		if err != nil {
			return nil, err
		}
		t.PG.Commits, t.PG.WALRecords = after.commits-pgBefore.commits, after.walRecords-pgBefore.walRecords
		t.PG.WALBytes, t.PG.WALSyncs = after.walBytes-pgBefore.walBytes, after.walSync-pgBefore.walSync
		t.PG.WALWrites = after.walWrite - pgBefore.walWrite
	}

	// Every run: succeeded once; the last finished_at ends the phase.
	var fins []time.Time
	for _, id := range ids {
		runs, err := clients[0].Runs(ctx, id, api.RunsOptions{Limit: 2 * o.nodes})
		if err != nil {
			return nil, err
		}
		if len(runs) != o.nodes {
			return nil, fmt.Errorf("job %d has %d runs, want %d", id, len(runs), o.nodes)
		}
		for _, r := range runs {
			if r.State == muster.RunSucceeded {
				t.Succeeded++
			} else {
				t.NotSucceeded++
			}
			if r.Attempt > 1 {
				t.Retried++
			}
			fins = append(fins, r.FinishedAt)
		}
	}
	slices.SortFunc(fins, func(a, b time.Time) int { return a.Compare(b) })
	end := fins[len(fins)-1]
	t.Seconds = end.Sub(t0).Seconds()
	t.RunsPerSec = float64(total) / t.Seconds
	lo, hi := fins[len(fins)/10], fins[len(fins)*9/10]
	if d := hi.Sub(lo).Seconds(); d > 0 {
		t.SteadyRunsPerSec = float64(len(fins)*9/10-len(fins)/10) / d
	}
	logf("%s: %d runs in %.2fs = %.0f runs/s (steady %.0f/s; observed drained at %.2fs; server CPU %v s, postgres %.2f s, other %.2f s)",
		tag, total, t.Seconds, t.RunsPerSec, t.SteadyRunsPerSec, t.ObservedSeconds, t.CPU.Servers, t.CPU.Postgres, t.CPU.Other)
	if t.NotSucceeded > 0 {
		return t, fmt.Errorf("%d of %d runs did not succeed", t.NotSucceeded, total)
	}
	return t, nil
}

// ---------------------------------------------------------------- latency

func latency(ctx context.Context, o options, tag string, clients []*api.Client, nodes []string) (*Latency, error) {
	// Let the last completions, heartbeats and the planner statistics
	// settle: the server is idle from here on, but for the samples.
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-time.After(2 * time.Second):
	}
	logf("%s: latency: %d single-node jobs, one at a time, pause %s..%s", tag, o.latSamples, o.latPauseMin, o.latPauseMax)
	var e2s, wait, ack []time.Duration
	for i := range o.latSamples {
		pause := o.latPauseMin
		if d := o.latPauseMax - o.latPauseMin; d > 0 {
			pause += rand.N(d)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(pause):
		}
		c := clients[i%len(clients)]
		node := nodes[i%len(nodes)]
		sent := time.Now()
		r, err := c.Submit(ctx, api.SubmitRequest{Kind: muster.JobCommand, Targets: api.Targets{Nodes: []string{node}},
			Spec: muster.JobSpec{Command: fmt.Sprintf("true # queue bench sample %d", i)}})
		if err != nil {
			return nil, err
		}
		acked := time.Now()
		run, err := waitStarted(ctx, c, r.Job.ID)
		if err != nil {
			return nil, err
		}
		e2s = append(e2s, run.StartedAt.Sub(sent))
		wait = append(wait, run.StartedAt.Sub(run.RunAt))
		ack = append(ack, acked.Sub(sent))
	}
	st, err := clients[0].Stats(ctx)
	if err != nil {
		return nil, err
	}
	l := &Latency{Samples: o.latSamples, EnqueueToStart: pct(e2s), ServerWait: pct(wait), SubmitAck: pct(ack), StatsWait: st.Wait}
	logf("%s: enqueue-to-start p50 %.1f ms, p95 %.1f ms, p99 %.1f ms (server wait p99 %.1f ms, submit ack p99 %.1f ms)",
		tag, l.EnqueueToStart.P50, l.EnqueueToStart.P95, l.EnqueueToStart.P99, l.ServerWait.P99, l.SubmitAck.P99)
	return l, nil
}

// waitStarted polls a one-run job until its run has finished (the fake
// backend finishes at once) and returns the run.
func waitStarted(ctx context.Context, c *api.Client, job int64) (api.RunView, error) {
	deadline := time.Now().Add(time.Minute)
	for {
		runs, err := c.Runs(ctx, job, api.RunsOptions{})
		if err != nil {
			return api.RunView{}, err
		}
		if len(runs) != 1 {
			return api.RunView{}, fmt.Errorf("job %d has %d runs, want 1", job, len(runs))
		}
		if r := runs[0]; r.State.Final() {
			if r.State != muster.RunSucceeded || r.StartedAt.IsZero() {
				return r, fmt.Errorf("job %d: run %d ended %s (%s)", job, r.ID, r.State, r.Error)
			}
			return r, nil
		}
		if time.Now().After(deadline) {
			return api.RunView{}, fmt.Errorf("job %d did not finish within a minute", job)
		}
		select {
		case <-ctx.Done():
			return api.RunView{}, ctx.Err()
		case <-time.After(2 * time.Millisecond):
		}
	}
}
