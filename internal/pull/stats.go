package pull

import "time"

// Stats is the scheduler's state, for metrics and tests.
type Stats struct {
	// Interval is the effective interval.
	Interval time.Duration
	// Utilisation is the smoothed utilisation the controller acts on,
	// and Pressure its ratio to the target, backlog included.
	Utilisation, Pressure float64
	// Nodes is how many nodes the scheduler knows, and Waiting how many
	// of them are due but were refused for capacity.
	Nodes, Waiting int
	// Admitted, Forced (of those admitted) and Refused count decisions
	// since the scheduler was built.
	Admitted, Forced, Refused uint64
	// Backends is each backend's state, draining ones last.
	Backends []BackendStats
}

// BackendStats is one backend's state.
type BackendStats struct {
	Name       string
	InFlight   int
	MaxRunning int
	Healthy    bool
	Draining   bool
}

// Stats returns the scheduler's state at now.
func (s *Scheduler) Stats(now time.Time) Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.advance(now)
	st := s.stats
	st.Interval = s.ctl.interval
	st.Utilisation, st.Pressure = s.ctl.util, s.ctl.pressure
	st.Nodes, st.Waiting = s.reg.n, s.waiting
	for i, b := range append(append([]*backend(nil), s.backends...), s.draining...) {
		st.Backends = append(st.Backends, BackendStats{Name: b.cfg.Name, InFlight: b.inFlight,
			MaxRunning: b.cfg.MaxRunning, Healthy: b.usable(), Draining: i >= len(s.backends)})
	}
	return st
}
