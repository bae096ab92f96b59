package pull

import (
	"math"
	"time"
)

// The controller's tuning. Its delays are short next to its time
// constant: utilisation is smoothed over a minute, a run lasts tens of
// seconds, and nodes learn of a new interval within MaxCheckIn (5 minutes
// by default), against a 10-minute time constant.
const (
	controlStep  = 5 * time.Second  // the controller acts at most this often
	maxStep      = time.Minute      // a longer silence counts as this long
	measureTau   = time.Minute      // time constant of the utilisation average
	controlTau   = 10 * time.Minute // time constant of the interval's change
	deadBand     = 0.02             // |ln(pressure)| below this changes nothing
	maxLogStep   = math.Ln2         // pressure is clamped to [1/2, 2]
	backlogRef   = time.Minute      // a minute's worth of due nodes waiting doubles the pressure
	minGapCycles = 0.5              // a run is followed by a slot run at least half a cycle later
)

// controller holds the sweep and the effective interval.
type controller struct {
	interval time.Duration // effective interval
	// cycles is the sweep's position at the instant at.
	cycles float64
	at     time.Time
	// lastStep is when the controller last acted; starts counts the run
	// starts since then.
	lastStep time.Time
	starts   int
	util     float64 // smoothed utilisation
	// pressure is the last utilisation-to-target ratio, with the backlog
	// term, for Stats.
	pressure float64
	// drift is how fast the interval has been changing lately: a moving
	// average of |d ln(interval) / dt|, per second.
	drift float64
}

// start places the sweep at now: cycles of the target interval since the
// Unix epoch, so that a fixed-interval scheduler agrees with NextDue.
func (c *controller) start(now time.Time, cfg *Config) {
	secs := float64(now.Unix()) + float64(now.Nanosecond())/1e9
	c.interval = cfg.Interval
	c.cycles = secs / cfg.Interval.Seconds()
	c.at, c.lastStep = now, now
	c.util, c.pressure = cfg.Utilisation, 1
}

// position returns the sweep's position at now (not before c.at).
func (c *controller) position(now time.Time) float64 {
	return c.cycles + float64(now.Sub(c.at))/float64(c.interval)
}

// setInterval changes the effective interval from now on, keeping the
// sweep continuous.
func (c *controller) setInterval(now time.Time, iv time.Duration) {
	c.cycles = c.position(now)
	c.at = now
	c.interval = iv
}

// sample is what the scheduler measures for a controller step.
type sample struct {
	inFlight, maxRunning int     // over healthy backends
	rate                 float64 // summed rate limits of healthy backends; 0 if any has none
	waiting, nodes       int
}

// step updates the utilisation average and the effective interval.
func (c *controller) step(now time.Time, cfg *Config, m sample) {
	dt := now.Sub(c.lastStep)
	if dt < controlStep {
		return
	}
	startRate := float64(c.starts) / dt.Seconds()
	c.starts, c.lastStep = 0, now
	dt = min(dt, maxStep)

	u := 1.0 // no healthy backend: as full as can be
	if m.maxRunning > 0 {
		u = float64(m.inFlight) / float64(m.maxRunning)
		if m.rate > 0 {
			u = max(u, startRate/m.rate)
		}
	}
	alpha := 1 - math.Exp(-dt.Seconds()/measureTau.Seconds())
	c.util += alpha * (u - c.util)

	dueRate := float64(m.nodes) / c.interval.Seconds()
	backlog := float64(m.waiting) / max(1, dueRate*backlogRef.Seconds())
	c.pressure = c.util / cfg.Utilisation * (1 + backlog)
	next := cfg.Floor
	if cfg.Floor != cfg.Ceiling {
		next = c.interval
		lp := math.Log(max(c.pressure, 1e-9))
		lp = max(-maxLogStep, min(maxLogStep, lp))
		if math.Abs(lp) >= deadBand {
			iv := float64(c.interval) * math.Exp(lp*dt.Seconds()/controlTau.Seconds())
			next = time.Duration(max(float64(cfg.Floor), min(float64(cfg.Ceiling), iv)))
		}
	}
	change := math.Abs(math.Log(float64(next)/float64(c.interval))) / dt.Seconds()
	c.drift += alpha * (change - c.drift)
	if next != c.interval {
		c.setInterval(now, next)
	}
}

// approach returns how long before a slot a node should check in for a
// fresh prediction of it: while the interval is changing, a prediction
// made w earlier is off by about drift*w*w, so the last leg of a wait is
// kept short enough for that to stay under a tenth of a second. It is 0
// while the interval holds still.
func (c *controller) approach() time.Duration {
	if c.drift < 1e-12 {
		return 0
	}
	return time.Duration(math.Sqrt(0.1/c.drift) * float64(time.Second))
}

// nextCrossing returns the first position k+phase strictly after x.
func nextCrossing(x, phase float64) float64 {
	return math.Floor(x-phase) + 1 + phase
}
