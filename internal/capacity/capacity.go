// Package capacity is admission control: it decides how many runs may
// start right now, so that work flows into a backend only as fast as the
// backend can take it and the load curve stays flat instead of spiking
// (docs/architecture.md, "The life of a job", step 3).
//
// A Controller combines three independent limits, and the tightest one
// wins:
//
//   - an in-flight limit: at most MaxInFlight runs at once;
//   - a rate limit: at most Rate run starts per second on average, with
//     bursts of up to Burst (a token bucket, golang.org/x/time/rate);
//   - a health gate: the results of an external probe of the backend
//     (a Puppet server's status page, say). The gate closes when the probe
//     fails, answers unhealthy, or reports a load above LoadThreshold, and
//     it reopens as soon as a probe succeeds again.
//
// The package does no I/O and reads no clock: the caller runs the probe and
// passes every time in, which keeps it deterministic and easy to test. The
// usual cycle is
//
//	d := c.Admit(now)             // how many may start, or why none
//	runs := claim(min(d.N, batch))
//	c.Start(now, len(runs))       // spend tokens, count them in flight
//	...
//	c.Finish(1)                   // as each run ends
//
// A Controller is safe for concurrent use, but Admit followed by Start is
// only exact when one goroutine does both (the dispatcher's loop), as
// nothing else spends tokens in between.
package capacity

import (
	"fmt"
	"math"
	"strconv"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Config sets the limits. The zero value admits everything.
type Config struct {
	// MaxInFlight caps the runs in flight at once; 0 means no cap.
	MaxInFlight int
	// Rate caps run starts per second; 0 means no rate limit.
	Rate float64
	// Burst is how many starts may happen at once after a quiet spell.
	// Default: a tenth of a second's worth of Rate, at least 1.
	Burst int
	// Health names the health probe in reasons ("health probe <Health>
	// answered 503"), normally its URL. Empty means there is no probe and
	// the gate is always open. With a probe, the gate starts closed until
	// the first result arrives: an unprobed backend is not assumed healthy.
	Health string
	// LoadThreshold closes the gate while the probe reports a load above
	// it; 0 means the load is not checked.
	LoadThreshold float64
}

// Probe is one health-probe result.
type Probe struct {
	// Err is set when the probe could not be made or its answer read
	// (refused, timed out).
	Err error
	// Status is the HTTP status of the answer, for reasons; 0 if none.
	Status int
	// OK is the backend's own verdict, for an HTTP probe a 2xx answer.
	OK bool
	// Load is the load the backend reports, or NaN when it reports none.
	Load float64
}

// Decision is what Admit allows.
type Decision struct {
	// N is how many runs may start now. It is math.MaxInt when nothing
	// limits, so callers cap it with their own batch size.
	N int
	// Why explains, when N is 0, which limit stopped admission.
	Why string
	// RetryIn is, when the rate limit stopped admission, how long until the
	// next run may start. It is 0 when only an event can reopen admission
	// (a run finishing, a healthy probe).
	RetryIn time.Duration
}

// Open reports whether any run may start.
func (d Decision) Open() bool { return d.N > 0 }

// Controller is the admission controller. Build it with New.
type Controller struct {
	cfg Config
	lim *rate.Limiter // nil: no rate limit

	mu       sync.Mutex
	inFlight int
	healthy  bool
	unwell   string // why the gate is closed
}

// New returns a Controller for cfg (negative values count as 0).
func New(cfg Config) *Controller {
	c := &Controller{cfg: cfg, healthy: cfg.Health == ""}
	if !c.healthy {
		c.unwell = "health probe " + cfg.Health + " has not answered yet"
	}
	if cfg.Rate > 0 {
		if c.cfg.Burst <= 0 {
			c.cfg.Burst = max(1, int(math.Ceil(cfg.Rate/10)))
		}
		c.lim = rate.NewLimiter(rate.Limit(cfg.Rate), c.cfg.Burst)
	}
	return c
}

// Admit says how many runs may start at now. It spends nothing; call Start
// with the number actually started.
func (c *Controller) Admit(now time.Time) Decision {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.healthy {
		return Decision{Why: c.unwell}
	}
	n := math.MaxInt
	if c.cfg.MaxInFlight > 0 {
		if n = c.cfg.MaxInFlight - c.inFlight; n <= 0 {
			return Decision{Why: fmt.Sprintf("max running %d reached", c.cfg.MaxInFlight)}
		}
	}
	if c.lim != nil {
		tokens := c.lim.TokensAt(now)
		if tokens < 1 {
			wait := time.Duration((1 - tokens) / c.cfg.Rate * float64(time.Second))
			return Decision{Why: "rate limit " + formatFloat(c.cfg.Rate) + "/s", RetryIn: max(wait, time.Microsecond)}
		}
		n = min(n, int(tokens))
	}
	return Decision{N: n}
}

// Start records that n runs started at now: it spends n rate tokens and
// counts n more in flight. Starting more than Admit allowed is recorded
// all the same (the bucket goes into debt and later admissions wait).
func (c *Controller) Start(now time.Time, n int) {
	if n <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.inFlight += n
	if c.lim == nil {
		return
	}
	// ReserveN takes at most Burst tokens at a time, and reserving more
	// than the bucket holds takes the rest on credit.
	for left := n; left > 0; left -= c.cfg.Burst {
		c.lim.ReserveN(now, min(left, c.cfg.Burst))
	}
}

// Finish records that n runs in flight ended.
func (c *Controller) Finish(n int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.inFlight = max(0, c.inFlight-n)
}

// InFlight returns the runs in flight.
func (c *Controller) InFlight() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.inFlight
}

// Observe feeds one health-probe result to the gate and reports whether
// the gate opened or closed because of it. Results are ignored when the
// Config names no probe.
func (c *Controller) Observe(p Probe) (changed bool) {
	if c.cfg.Health == "" {
		return false
	}
	why := c.judge(p)
	c.mu.Lock()
	defer c.mu.Unlock()
	was := c.healthy
	c.healthy, c.unwell = why == "", why
	return was != c.healthy
}

// judge returns why p closes the gate, or "" if it keeps it open.
func (c *Controller) judge(p Probe) string {
	name := "health probe " + c.cfg.Health
	switch {
	case p.Err != nil:
		return name + " failed: " + p.Err.Error()
	case !p.OK && p.Status != 0:
		return name + " answered " + strconv.Itoa(p.Status)
	case !p.OK:
		return name + " reports the backend unhealthy"
	case c.cfg.LoadThreshold > 0 && !math.IsNaN(p.Load) && p.Load > c.cfg.LoadThreshold:
		return name + " reports load " + formatFloat(p.Load) + ", above " + formatFloat(c.cfg.LoadThreshold)
	}
	return ""
}

// Health reports whether the health gate is open, and if not, why.
func (c *Controller) Health() (open bool, why string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.healthy, c.unwell
}

func formatFloat(f float64) string { return strconv.FormatFloat(f, 'g', 4, 64) }
