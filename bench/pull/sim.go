package main

import (
	"container/heap"
	"math"
	"math/rand/v2"
)

// The backend model shared by every scenario: backends that run
// capacity runs at full speed at once. Past that they share their
// throughput (processor sharing): with c runs in flight each progresses
// at capacity/c of full speed, so an overloaded backend does not refuse
// work, it slows every run down, as a Puppet Server whose JRubies are all
// busy queues catalog requests.
type engine struct {
	now      float64 // seconds since the start
	end      float64
	work     float64 // virtual work clock: full-speed seconds done per run
	running  int
	capacity int
	fin      finHeap
	ev       evHeap
	seq      uint64

	starts      []int32 // run starts per second
	concurrency []int32 // runs in flight at the end of each second
	peak        int     // most runs in flight at once, whole run
	peakSteady  int     // the same, in the steady window
	steadyFrom  float64
	total       int
	// Run times actually taken (wall seconds), for the report.
	runSum float64
	runMax float64
	runN   int
}

type finItem struct {
	work  float64 // work clock value at which the run ends
	start float64
	node  int32
	tag   int32
}

type finHeap []finItem

func (h finHeap) Len() int           { return len(h) }
func (h finHeap) Less(i, j int) bool { return h[i].work < h[j].work }
func (h finHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *finHeap) Push(x any)        { *h = append(*h, x.(finItem)) }
func (h *finHeap) Pop() any {
	old := *h
	it := old[len(old)-1]
	*h = old[:len(old)-1]
	return it
}

type evItem struct {
	t    float64
	seq  uint64 // keeps equal times in insertion order
	node int32
}

type evHeap []evItem

func (h evHeap) Len() int { return len(h) }
func (h evHeap) Less(i, j int) bool {
	if h[i].t != h[j].t {
		return h[i].t < h[j].t
	}
	return h[i].seq < h[j].seq
}
func (h evHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *evHeap) Push(x any)   { *h = append(*h, x.(evItem)) }
func (h *evHeap) Pop() any {
	old := *h
	it := old[len(old)-1]
	*h = old[:len(old)-1]
	return it
}

func newEngine(seconds int, capacity int, steadyFrom float64) *engine {
	return &engine{end: float64(seconds), capacity: capacity, steadyFrom: steadyFrom,
		starts: make([]int32, seconds), concurrency: make([]int32, seconds)}
}

func (e *engine) speed() float64 {
	if e.running <= e.capacity {
		return 1
	}
	return float64(e.capacity) / float64(e.running)
}

// at schedules an event for node at time t (dropped past the end).
func (e *engine) at(t float64, node int32) {
	if t < e.end {
		e.seq++
		heap.Push(&e.ev, evItem{t: t, seq: e.seq, node: node})
	}
}

// start begins a run of node needing work full-speed seconds.
func (e *engine) start(node, tag int32, work float64) {
	e.running++
	heap.Push(&e.fin, finItem{work: e.work + work, start: e.now, node: node, tag: tag})
	if s := int(e.now); s < len(e.starts) {
		e.starts[s]++
	}
	e.total++
	e.peak = max(e.peak, e.running)
	if e.now >= e.steadyFrom {
		e.peakSteady = max(e.peakSteady, e.running)
	}
}

// moveTo advances the clock to t, with no event in between.
func (e *engine) moveTo(t float64) {
	for s := int(e.now); s < int(t) && s < len(e.concurrency); s++ {
		e.concurrency[s] = int32(e.running)
	}
	e.work += (t - e.now) * e.speed()
	e.now = t
}

// run processes events until the end: onEvent for timed events, onFinish
// for run completions, in time order.
func (e *engine) run(onEvent func(node int32), onFinish func(node, tag int32)) {
	for {
		tEv, tFin := math.Inf(1), math.Inf(1)
		if len(e.ev) > 0 {
			tEv = e.ev[0].t
		}
		if len(e.fin) > 0 {
			tFin = e.now + (e.fin[0].work-e.work)/e.speed()
		}
		if min(tEv, tFin) >= e.end {
			e.moveTo(e.end)
			return
		}
		if tFin <= tEv {
			e.moveTo(tFin)
			it := heap.Pop(&e.fin).(finItem)
			e.work = it.work
			e.running--
			d := e.now - it.start
			e.runSum += d
			e.runMax = max(e.runMax, d)
			e.runN++
			onFinish(it.node, it.tag)
			continue
		}
		e.moveTo(tEv)
		it := heap.Pop(&e.ev).(evItem)
		onEvent(it.node)
	}
}

// runTimes draws full-speed run times: lognormal with the given mean and
// shape sigma (median = mean * exp(-sigma^2/2)), one stream per scenario
// so that every scenario sees the same sequence.
type runTimes struct {
	rnd    *rand.Rand
	median float64
	sigma  float64
}

func newRunTimes(seed uint64, mean, sigma float64) *runTimes {
	return &runTimes{rnd: rand.New(rand.NewPCG(seed, 7)), median: mean * math.Exp(-sigma*sigma/2), sigma: sigma}
}

func (r *runTimes) next() float64 {
	return r.median * math.Exp(r.sigma*r.rnd.NormFloat64())
}

func (r *runTimes) quantile(q float64) float64 {
	// Inverse normal by bisection on the error function: precise enough
	// for a report.
	lo, hi := -10.0, 10.0
	for range 100 {
		mid := (lo + hi) / 2
		if 0.5*math.Erfc(-mid/math.Sqrt2) < q {
			lo = mid
		} else {
			hi = mid
		}
	}
	return r.median * math.Exp(r.sigma*lo)
}
