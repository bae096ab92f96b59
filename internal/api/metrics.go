package api

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/muster-run/muster"
)

// Metrics holds the server's Prometheus metrics in a private registry:
// queue gauges read from Store.Stats at scrape time, wait and run-time
// histograms that the dispatcher feeds, the admission gauge, HTTP request
// counters, the API's limits and their refusals, and the Go and process
// collectors.
type Metrics struct {
	reg       *prometheus.Registry
	wait      prometheus.Histogram
	duration  *prometheus.HistogramVec
	admission prometheus.Gauge
	requests  *prometheus.CounterVec
	limits    *prometheus.GaugeVec
	refusals  *prometheus.CounterVec
	handler   http.Handler
}

// The outcomes of a finished attempt, the "outcome" label of
// muster_run_duration_seconds. RunOutcome derives one.
const (
	OutcomeSucceeded = "succeeded"
	OutcomeFailed    = "failed"
	OutcomeCancelled = "cancelled" // the job was cancelled while the attempt ran
	OutcomeTimeout   = "timeout"   // the attempt ran out of time
)

// RunOutcome is the outcome label of a finished attempt, from what the
// dispatcher reports (dispatch.Outcome's OK and Error, which is "<kind>:
// <message>"): OutcomeSucceeded when ok, else OutcomeCancelled for an
// error of kind muster/cancelled, OutcomeTimeout for muster/timeout-error,
// and OutcomeFailed for anything else.
func RunOutcome(ok bool, errText string) string {
	if ok {
		return OutcomeSucceeded
	}
	kind, _, _ := strings.Cut(errText, ":")
	switch strings.TrimSpace(kind) {
	case muster.KindCancelled:
		return OutcomeCancelled
	case muster.KindTimeout:
		return OutcomeTimeout
	}
	return OutcomeFailed
}

// NewMetrics makes the metrics for store. A server makes its own unless
// Config.Metrics is set.
func NewMetrics(store muster.Jobs) *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		wait: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "muster_run_wait_seconds",
			Help:    "Time a run waited between becoming ready and starting.",
			Buckets: []float64{.01, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600},
		}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "muster_run_duration_seconds",
			Help:    "Run time of a run attempt, by outcome.",
			Buckets: []float64{.1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600},
		}, []string{"outcome"}),
		admission: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "muster_admission_open",
			Help: "1 while admission control lets new runs start, 0 while it holds them back.",
		}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "muster_http_requests_total",
			Help: "HTTP API requests, by route and status code.",
		}, []string{"route", "code"}),
		limits: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "muster_api_limit",
			Help: "The API's configured limits (targets_per_job, jobs_per_minute per token); 0 means no limit.",
		}, []string{"limit"}),
		refusals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "muster_api_limit_refusals_total",
			Help: "Submissions refused by an API limit, by limit.",
		}, []string{"limit"}),
	}
	m.handler = promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
	m.admission.Set(1)
	for _, l := range []string{limitTargetsPerJob, limitJobsPerMinute} {
		m.limits.WithLabelValues(l).Set(0)
		m.refusals.WithLabelValues(l).Add(0)
	}
	m.reg.MustRegister(m.wait, m.duration, m.admission, m.requests, m.limits, m.refusals, newQueueCollector(store),
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// ObserveStart records how long a run waited before it started.
func (m *Metrics) ObserveStart(wait time.Duration) { m.wait.Observe(max(0, wait.Seconds())) }

// ObserveFinish records a finished attempt's run time and outcome: one of
// OutcomeSucceeded, OutcomeFailed, OutcomeCancelled and OutcomeTimeout,
// as RunOutcome derives them.
func (m *Metrics) ObserveFinish(runTime time.Duration, outcome string) {
	m.duration.WithLabelValues(outcome).Observe(max(0, runTime.Seconds()))
}

// SetAdmission records whether admission control is letting runs start.
func (m *Metrics) SetAdmission(open bool) {
	v := 0.0
	if open {
		v = 1
	}
	m.admission.Set(v)
}

// Registry is the private registry, for extra collectors.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the metrics in the Prometheus text format, without
// authentication (the server's /metrics route adds it).
func (m *Metrics) Handler() http.Handler { return m.handler }

// setLimit shows a configured limit (0: none).
func (m *Metrics) setLimit(limit string, v int) { m.limits.WithLabelValues(limit).Set(float64(v)) }

// refuse counts a submission refused by a limit.
func (m *Metrics) refuse(limit string) { m.refusals.WithLabelValues(limit).Inc() }

func (m *Metrics) countRequest(route string, code int) {
	if code == 0 {
		code = http.StatusOK
	}
	m.requests.WithLabelValues(route, strconv.Itoa(code)).Inc()
}

// queueCollector reads Store.Stats at scrape time.
type queueCollector struct {
	store                      muster.Jobs
	runs, ready, oldest, alive *prometheus.Desc
}

func newQueueCollector(store muster.Jobs) *queueCollector {
	return &queueCollector{
		store:  store,
		runs:   prometheus.NewDesc("muster_runs", "Runs in the queue, by state.", []string{"state"}, nil),
		ready:  prometheus.NewDesc("muster_queue_ready", "Runs ready to start now.", nil, nil),
		oldest: prometheus.NewDesc("muster_queue_oldest_ready_age_seconds", "Age of the oldest ready run: the signal to add capacity.", nil, nil),
		alive:  prometheus.NewDesc("muster_store_up", "1 when the last read of the queue store succeeded.", nil, nil),
	}
}

func (c *queueCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.runs
	ch <- c.ready
	ch <- c.oldest
	ch <- c.alive
}

func (c *queueCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := c.store.Stats(ctx)
	if err != nil {
		ch <- prometheus.MustNewConstMetric(c.alive, prometheus.GaugeValue, 0)
		return
	}
	ch <- prometheus.MustNewConstMetric(c.alive, prometheus.GaugeValue, 1)
	for _, s := range muster.RunStates {
		ch <- prometheus.MustNewConstMetric(c.runs, prometheus.GaugeValue, float64(st.Counts[s]), string(s))
	}
	ch <- prometheus.MustNewConstMetric(c.ready, prometheus.GaugeValue, float64(st.Ready))
	ch <- prometheus.MustNewConstMetric(c.oldest, prometheus.GaugeValue, st.OldestReadyAge.Seconds())
}

func (s *Server) handleMetrics(w http.ResponseWriter, r *http.Request, _ muster.Token) error {
	s.metrics.Handler().ServeHTTP(w, r)
	return nil
}
