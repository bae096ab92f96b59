package main

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/muster-run/muster/internal/pull"
)

// params are the fleet and the simulation's settings, shared by every
// scenario.
type params struct {
	nodes      int
	seconds    int
	warmup     int
	interval   time.Duration // runinterval, cron period, muster's target
	floor      time.Duration // muster adaptive
	ceiling    time.Duration
	backends   int
	maxRunning int     // per backend
	rate       float64 // runs/s per backend
	meanRun    float64 // seconds, at full speed
	sigma      float64
	seed       uint64
	jitter     float64 // seconds of network and timer delay on a check-in
}

func (p params) capacity() int { return p.backends * p.maxRunning }

// result is one scenario's measurements.
type result struct {
	name, short string
	e           *engine
	checkIns    int
	refused     int
	intervals   []time.Duration // muster: effective interval every minute
	elapsed     time.Duration
	note        string
}

func certname(i int) string { return fmt.Sprintf("node%06d.example.com", i) }

// t0 is the simulated start: any fixed instant would do.
var t0 = time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)

func at(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }

// musterConfig builds the pull configuration of a scenario.
func musterConfig(p params, floor, ceiling time.Duration) (*pull.Config, error) {
	y := fmt.Sprintf("interval: %s\nfloor: %s\nceiling: %s\nbackends:\n", p.interval, floor, ceiling)
	for b := range p.backends {
		y += fmt.Sprintf("  - {name: puppet%d.example.com, max_running: %d, rate: %g}\n", b+1, p.maxRunning, p.rate)
	}
	y += "runs:\n  - command: puppet agent --test --server \"$MUSTER_BACKEND\"\n    success_codes: [0, 2]\n"
	return pull.Parse("bench.pull.yaml", []byte(y))
}

// simMuster drives the real scheduler. All agents (re)start within the
// first minute and check in; the server knows every node and its last run
// (the fleet was already on muster), which was at its slot of the target
// interval.
func simMuster(p params, name, short string, floor, ceiling time.Duration) (*result, error) {
	cfg, err := musterConfig(p, floor, ceiling)
	if err != nil {
		return nil, err
	}
	rnd := rand.New(rand.NewPCG(p.seed, 1))
	s := pull.New(cfg, pull.Options{Rand: rand.New(rand.NewPCG(p.seed, 2))})
	rt := newRunTimes(p.seed, p.meanRun, p.sigma)
	e := newEngine(p.seconds, p.capacity(), float64(p.warmup))
	r := &result{name: name, short: short, e: e}

	names := make([]string, p.nodes)
	last := make([]time.Time, p.nodes)
	facts := make([]time.Time, p.nodes)
	nextCheck := make([]float64, p.nodes)
	running := make([]bool, p.nodes)
	backend := make([]string, p.nodes)
	for i := range names {
		names[i] = certname(i)
		last[i] = pull.NextDue(names[i], t0.Add(-p.interval), p.interval)
		facts[i] = last[i]
	}
	s.Register(t0, names...)
	for i := range names {
		e.at(rnd.Float64()*60, int32(i))
	}
	onEvent := func(node int32) {
		i := int(node)
		now := at(e.now)
		d := s.Decide(pull.CheckIn{Node: names[i], Now: now, LastRun: last[i], LastFacts: facts[i], Running: running[i]})
		r.checkIns++
		if d.UploadFacts {
			facts[i] = now
		}
		next := d.NextCheckIn.Sub(t0).Seconds() + rnd.Float64()*p.jitter
		if !d.RunNow {
			if d.Reason == pull.ReasonCapacity {
				r.refused++
			}
			e.at(next, node)
			return
		}
		last[i], running[i], backend[i], nextCheck[i] = now, true, d.Backend, next
		e.start(node, 0, rt.next())
	}
	onFinish := func(node, _ int32) {
		i := int(node)
		running[i] = false
		s.Finish(at(e.now), backend[i])
		// The agent checks in when told to, or when its run ends if later.
		e.at(max(nextCheck[i], e.now+rnd.Float64()*p.jitter), node)
	}
	// A sampling event every minute records the effective interval.
	const sampler = -1
	sample := func() { r.intervals = append(r.intervals, s.Stats(at(e.now)).Interval) }
	for m := 0; m*60 < p.seconds; m++ {
		e.at(float64(m*60), sampler)
	}
	start := time.Now()
	e.run(func(node int32) {
		if node == sampler {
			sample()
			return
		}
		onEvent(node)
	}, onFinish)
	r.elapsed = time.Since(start)
	st := s.Stats(at(e.now))
	r.note = fmt.Sprintf("effective interval at the end %s; %d nodes known; %d due nodes waiting", st.Interval.Round(time.Second), st.Nodes, st.Waiting)
	return r, nil
}

// simRuninterval is the Puppet agent daemon: every agent restarts at
// t = 0 (a fleet-wide deploy) and, with splay, sleeps a random time in
// [0, splaylimit = runinterval) before its first run; without splay it runs
// at once (within a few seconds of the restart). After that it runs
// runinterval after each run ends.
func simRuninterval(p params, splay bool) *result {
	rnd := rand.New(rand.NewPCG(p.seed, 3))
	rt := newRunTimes(p.seed, p.meanRun, p.sigma)
	e := newEngine(p.seconds, p.capacity(), float64(p.warmup))
	r := &result{e: e, name: "runinterval 30m + splay", short: "runinterval+splay"}
	if !splay {
		r.name, r.short = "runinterval 30m, no splay", "runinterval"
	}
	iv := p.interval.Seconds()
	for i := range p.nodes {
		first := rnd.Float64() * 5
		if splay {
			first = rnd.Float64() * iv
		}
		e.at(first, int32(i))
	}
	start := time.Now()
	e.run(func(node int32) { e.start(node, 0, rt.next()) },
		func(node, _ int32) { e.at(e.now+iv, node) })
	r.elapsed = time.Since(start)
	return r
}

// fqdnRand is Puppet's fqdn_rand(n) in spirit: a number in [0, n) fixed
// by the host name.
func fqdnRand(name string, n int) int {
	sum := sha256.Sum256([]byte(name + ":cron"))
	return int(binary.BigEndian.Uint64(sum[:8]) % uint64(n))
}

// simCron is cron with a host-name-hashed minute: each node runs at
// minute fqdn_rand(30) and 30 minutes later, every hour, at second 0. A
// run that finds the previous one still going exits at once (Puppet's run
// lock) and is not counted.
func simCron(p params) *result {
	rt := newRunTimes(p.seed, p.meanRun, p.sigma)
	e := newEngine(p.seconds, p.capacity(), float64(p.warmup))
	r := &result{e: e, name: "cron, fqdn_rand minute, every 30m", short: "cron fqdn_rand"}
	period := int(p.interval.Seconds())
	minutes := period / 60
	running := make([]bool, p.nodes)
	for i := range p.nodes {
		e.at(float64(fqdnRand(certname(i), minutes)*60), int32(i))
	}
	start := time.Now()
	e.run(func(node int32) {
		if !running[node] {
			running[node] = true
			e.start(node, 0, rt.next())
		}
		e.at(e.now+float64(period), node)
	}, func(node, _ int32) { running[node] = false })
	r.elapsed = time.Since(start)
	return r
}
