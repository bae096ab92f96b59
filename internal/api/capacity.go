package api

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/muster-run/muster"
)

// The capacity signal: how many more workers (muster server processes
// sharing the queue) would clear the ready backlog within a target age.
// GET /api/v1/capacity answers it for a target age and window of the
// caller's choosing, and /metrics shows it for Config.Capacity's target
// age as the muster_capacity_* gauges, which an autoscaler (KEDA, an HPA
// on a Prometheus adapter) or an alert can read.
//
// The formula. Let
//
//	B = ready runs (the backlog),           A = the target age,
//	R = running runs (every server),        S = slots per worker (--slots),
//	F = runs finished in the window W,      T = F / W (throughput, runs/s),
//	M = the global --max-running (0: none).
//
// A busy slot finishes μ runs a second: μ = T / R when both are above
// zero (observed); else 1 / the median run time of the recent finished
// runs (run_time); else μ is unknown (none). A worker runs S slots, so it
// finishes S·μ runs a second.
//
//	current_workers  = ceil(R / S)                      (the servers' worth of busy slots)
//	slots needed     = max(R, ceil(B / (A·μ)))          (drain B at B/A runs a second,
//	                                                     without stopping what runs)
//	                   R + B                            (μ unknown: start every ready run now)
//	                   0 when B = 0 and R = 0           (idle)
//	workers_needed   = ceil(slots needed / S), at most ceil(M / S) when M > 0
//	additional       = max(0, workers_needed − current_workers)
//
// Draining the backlog at B/A runs a second makes the last ready run start
// within A; when runs keep arriving at the current rate, the backlog
// settles where a run waits about A. Workers that are busy count as
// needed: the signal never asks to stop a server that is running work.
// A backlog that waits although slots are free (one run per node, --rate,
// --max-running, admission closed) is not for want of workers, and the
// explanation says so.

// DefaultTargetAge is the capacity signal's target age when none is given.
const DefaultTargetAge = 60 * time.Second

// defaultSlots is a server's --slots default, assumed when
// CapacityConfig.Slots is not set.
const defaultSlots = 100

// CapacityConfig is what the capacity signal knows of the servers.
type CapacityConfig struct {
	// Slots is how many runs one worker runs at once (muster server
	// --slots). Every server of a deployment is assumed to have the same.
	// Default 100, the server's default.
	Slots int
	// MaxRunning is the global cap on running runs (--max-running); 0 for
	// none. More workers than MaxRunning's worth of slots cannot help.
	MaxRunning int
	// TargetAge is the target age for the /metrics gauges; default
	// DefaultTargetAge. GET /api/v1/capacity takes its own.
	TargetAge time.Duration
}

func (c CapacityConfig) withDefaults() CapacityConfig {
	if c.Slots <= 0 {
		c.Slots = defaultSlots
	}
	if c.MaxRunning < 0 {
		c.MaxRunning = 0
	}
	if c.TargetAge <= 0 {
		c.TargetAge = DefaultTargetAge
	}
	return c
}

// The windows the throughput may be measured over (Stats' finished counts).
var capacityWindows = map[string]time.Duration{"1m": time.Minute, "5m": 5 * time.Minute, "15m": 15 * time.Minute}

// The throughput sources of CapacityView.ThroughputSource.
const (
	SourceObserved = "observed" // T / R over the window
	SourceRunTime  = "run_time" // 1 / the median run time
	SourceNone     = "none"     // nothing finished, nothing to measure
)

// CapacityView is the answer of GET /api/v1/capacity.
type CapacityView struct {
	TargetAgeSeconds      float64 `json:"target_age_seconds"`
	Window                string  `json:"window"`
	Backlog               int     `json:"backlog"`
	OldestReadyAgeSeconds float64 `json:"oldest_ready_age_seconds"`
	Running               int     `json:"running"`
	SlotsPerWorker        int     `json:"slots_per_worker"`
	MaxRunning            int     `json:"max_running"`
	// Finished runs in the window, and the throughput they imply.
	Finished            int     `json:"finished"`
	ThroughputPerSecond float64 `json:"throughput_per_second"`
	PerSlotPerSecond    float64 `json:"per_slot_throughput_per_second"`
	PerWorkerPerSecond  float64 `json:"per_worker_throughput_per_second"`
	ThroughputSource    string  `json:"throughput_source"`
	CurrentWorkers      int     `json:"current_workers"`
	WorkersNeeded       int     `json:"workers_needed"`
	AdditionalWorkers   int     `json:"additional_workers"`
	CappedByMaxRunning  bool    `json:"capped_by_max_running"`
	TargetMet           bool    `json:"target_met"`
	Explanation         string  `json:"explanation"`
}

// capacityInput is what the formula reads.
type capacityInput struct {
	Backlog     int
	OldestReady time.Duration
	Running     int
	Finished    int           // in Window
	Window      time.Duration // > 0
	RunTimeP50  time.Duration // median run time of recent finished runs; 0 if none
	Slots       int           // > 0
	MaxRunning  int           // 0: none
	TargetAge   time.Duration // > 0
}

func ceilDiv(a, b int) int {
	if a <= 0 {
		return 0
	}
	return (a + b - 1) / b
}

// computeCapacity applies the formula at the top of this file.
func computeCapacity(in capacityInput) CapacityView {
	B, R, S, A := in.Backlog, in.Running, in.Slots, in.TargetAge.Seconds()
	v := CapacityView{
		TargetAgeSeconds: A, Backlog: B, OldestReadyAgeSeconds: in.OldestReady.Seconds(),
		Running: R, SlotsPerWorker: S, MaxRunning: in.MaxRunning, Finished: in.Finished,
		ThroughputPerSecond: float64(in.Finished) / in.Window.Seconds(),
		CurrentWorkers:      ceilDiv(R, S),
		TargetMet:           in.OldestReady <= in.TargetAge,
	}
	var mu float64
	switch {
	case v.ThroughputPerSecond > 0 && R > 0:
		mu, v.ThroughputSource = v.ThroughputPerSecond/float64(R), SourceObserved
	case in.RunTimeP50 > 0:
		mu, v.ThroughputSource = 1/in.RunTimeP50.Seconds(), SourceRunTime
	default:
		v.ThroughputSource = SourceNone
	}
	v.PerSlotPerSecond, v.PerWorkerPerSecond = mu, mu*float64(S)

	var slots int
	switch {
	case B == 0:
		slots = R
	case mu > 0:
		// B / (A·μ) slots drain B runs in A seconds. The float is bounded
		// before it becomes an int: a tiny μ must not overflow.
		need := math.Ceil(float64(B) / (A * mu))
		slots = max(R, int(min(need, float64(math.MaxInt32))))
	default:
		slots = R + B
	}
	v.WorkersNeeded = ceilDiv(slots, S)
	if in.MaxRunning > 0 {
		if limit := ceilDiv(in.MaxRunning, S); v.WorkersNeeded > limit {
			v.WorkersNeeded, v.CappedByMaxRunning = max(limit, v.CurrentWorkers), true
		}
	}
	v.AdditionalWorkers = max(0, v.WorkersNeeded-v.CurrentWorkers)
	v.Explanation = explainCapacity(v, in)
	return v
}

// explainCapacity says in a sentence or three what the numbers mean.
func explainCapacity(v CapacityView, in capacityInput) string {
	var b strings.Builder
	age := func(d time.Duration) string { return d.Round(time.Millisecond).String() }
	switch {
	case v.Backlog == 0 && v.Running == 0:
		b.WriteString("The queue is idle: no run is ready or running, so no worker is needed.")
	case v.Backlog == 0:
		fmt.Fprintf(&b, "No run is waiting; %d running runs keep %d worker(s) of %d slots busy.",
			v.Running, v.CurrentWorkers, v.SlotsPerWorker)
	case v.ThroughputSource == SourceNone:
		fmt.Fprintf(&b, "%d runs are ready (the oldest waiting %s) and none finished in the last %s to measure "+
			"throughput by, so the estimate is enough workers of %d slots to start every ready run at once: %d.",
			v.Backlog, age(in.OldestReady), v.Window, v.SlotsPerWorker, v.WorkersNeeded)
	default:
		how := fmt.Sprintf("%.3g runs/s from %d busy slots over the last %s", v.ThroughputPerSecond, v.Running, v.Window)
		if v.ThroughputSource == SourceRunTime {
			how = fmt.Sprintf("1 run per median run time of %s", age(in.RunTimeP50))
		}
		fmt.Fprintf(&b, "%d runs are ready (the oldest waiting %s). A slot finishes %.3g runs/s (%s), "+
			"so a worker of %d slots finishes %.3g runs/s; clearing the backlog within %s takes %d worker(s)",
			v.Backlog, age(in.OldestReady), v.PerSlotPerSecond, how, v.SlotsPerWorker, v.PerWorkerPerSecond,
			age(in.TargetAge), v.WorkersNeeded)
		if v.CurrentWorkers > 0 {
			fmt.Fprintf(&b, ", and %d are busy", v.CurrentWorkers)
		}
		b.WriteString(".")
	}
	if v.CappedByMaxRunning {
		fmt.Fprintf(&b, " --max-running %d caps the useful workers at %d.", v.MaxRunning, v.WorkersNeeded)
	}
	switch {
	case v.AdditionalWorkers > 0:
		fmt.Fprintf(&b, " Add %d worker(s).", v.AdditionalWorkers)
	case v.Backlog > 0 && !v.TargetMet:
		fmt.Fprintf(&b, " The oldest ready run has waited past the %s target although the workers suffice: "+
			"runs wait for something else (one run per node, --rate, --max-running, admission closed).", age(in.TargetAge))
	case v.Backlog > 0 || v.Running > 0:
		b.WriteString(" No more workers are needed.")
	}
	return b.String()
}

// capacity reads the store and applies the formula.
func capacity(ctx context.Context, store muster.Jobs, cc CapacityConfig, targetAge time.Duration, window string) (CapacityView, error) {
	st, err := store.Stats(ctx)
	if err != nil {
		return CapacityView{}, err
	}
	cc = cc.withDefaults()
	finished := map[string]int{"1m": st.Finished1m, "5m": st.Finished5m, "15m": st.Finished15m}[window]
	v := computeCapacity(capacityInput{
		Backlog: st.Ready, OldestReady: st.OldestReadyAge, Running: st.Counts[muster.RunRunning],
		Finished: finished, Window: capacityWindows[window], RunTimeP50: st.RunTime.P50,
		Slots: cc.Slots, MaxRunning: cc.MaxRunning, TargetAge: targetAge,
	})
	v.Window = window
	return v, nil
}

// handleCapacity answers GET /api/v1/capacity?target_age=60s&window=1m.
func (s *Server) handleCapacity(w http.ResponseWriter, r *http.Request, _ muster.Token) error {
	q := r.URL.Query()
	for k := range q {
		if k != "target_age" && k != "window" {
			return badRequest("unknown query parameter %q (known: target_age, window)", k)
		}
	}
	cc := s.cfg.Capacity.withDefaults()
	target := cc.TargetAge
	if t := q.Get("target_age"); t != "" {
		d, err := time.ParseDuration(t)
		if err != nil || d < time.Second {
			return badRequest("target_age: %q is not a duration of at least 1s (such as 60s or 5m)", t)
		}
		target = d
	}
	window := q.Get("window")
	if window == "" {
		window = "1m"
	}
	if _, ok := capacityWindows[window]; !ok {
		return badRequest("window: %q is not one of 1m, 5m, 15m", window)
	}
	v, err := capacity(r.Context(), s.store, s.cfg.Capacity, target, window)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, v)
	return nil
}

// Capacity asks how many more workers would clear the backlog within
// targetAge (0: the server's default), with the throughput measured over
// window ("1m", "5m", "15m"; "": 1m).
func (c *Client) Capacity(ctx context.Context, targetAge time.Duration, window string) (CapacityView, error) {
	var out CapacityView
	q := url.Values{}
	if targetAge > 0 {
		q.Set("target_age", targetAge.String())
	}
	if window != "" {
		q.Set("window", window)
	}
	err := c.call(ctx, "get the capacity signal", "GET", "/api/v1/capacity", q, nil, &out)
	return out, err
}

// capacityCollector shows the capacity signal for Config.Capacity's
// target age over the 1m window as gauges, read at scrape time.
type capacityCollector struct {
	store                                       muster.Jobs
	cc                                          CapacityConfig
	needed, additional, current, perWorker, age *prometheus.Desc
}

// registerCapacity adds the capacity gauges to m. A Metrics shared by two
// servers keeps the first one's.
func (m *Metrics) registerCapacity(store muster.Jobs, cc CapacityConfig) {
	cc = cc.withDefaults()
	c := &capacityCollector{store: store, cc: cc,
		needed: prometheus.NewDesc("muster_capacity_workers_needed",
			"Workers (servers of slots_per_worker slots) needed to clear the ready backlog within the target age (GET /api/v1/capacity).", nil, nil),
		additional: prometheus.NewDesc("muster_capacity_additional_workers",
			"Workers to add to clear the ready backlog within the target age: workers_needed - current_workers, at least 0.", nil, nil),
		current: prometheus.NewDesc("muster_capacity_current_workers",
			"Workers' worth of busy slots: ceil(running runs / slots per worker).", nil, nil),
		perWorker: prometheus.NewDesc("muster_capacity_worker_throughput_per_second",
			"Runs a second one worker finishes, as observed over the last minute (0 when unknown).", nil, nil),
		age: prometheus.NewDesc("muster_capacity_target_age_seconds",
			"The target age the muster_capacity_* gauges are computed for (muster server --capacity-target-age).", nil, nil),
	}
	var are prometheus.AlreadyRegisteredError
	if err := m.reg.Register(c); err != nil && !errors.As(err, &are) {
		panic(err)
	}
}

func (c *capacityCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.needed, c.additional, c.current, c.perWorker, c.age} {
		ch <- d
	}
}

func (c *capacityCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ch <- prometheus.MustNewConstMetric(c.age, prometheus.GaugeValue, c.cc.TargetAge.Seconds())
	v, err := capacity(ctx, c.store, c.cc, c.cc.TargetAge, "1m")
	if err != nil {
		return // muster_store_up says why
	}
	ch <- prometheus.MustNewConstMetric(c.needed, prometheus.GaugeValue, float64(v.WorkersNeeded))
	ch <- prometheus.MustNewConstMetric(c.additional, prometheus.GaugeValue, float64(v.AdditionalWorkers))
	ch <- prometheus.MustNewConstMetric(c.current, prometheus.GaugeValue, float64(v.CurrentWorkers))
	ch <- prometheus.MustNewConstMetric(c.perWorker, prometheus.GaugeValue, v.PerWorkerPerSecond)
}
