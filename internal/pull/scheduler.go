package pull

import (
	"maps"
	"math"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/muster-run/muster"
)

// Reasons a Decision gives.
const (
	ReasonSlot     = "slot"      // run: the sweep passed the node's slot
	ReasonForced   = "forced"    // run: a forced run (file change, operator)
	ReasonFirst    = "first run" // run: the node has never run
	ReasonOverdue  = "overdue"   // run: the last run is older than an interval
	ReasonNotDue   = "not due"   // no run: the slot has not come round
	ReasonCapacity = "capacity"  // no run: due, but no backend has room
	ReasonRunning  = "running"   // no run: the node has a run in flight
	ReasonNoRun    = "no run"    // no run: no runs entry matches the node
)

// reserveShare is the share of each backend's limits that slot runs leave
// to forced runs.
const reserveShare = 0.1

// CheckIn is one node's check-in, as the server passes it to Decide.
type CheckIn struct {
	// Node is the node's certname, from its client certificate.
	Node string
	// Groups are the node's inventory groups, for runs and rollouts
	// matching by group.
	Groups []string
	// Now is the time of the check-in.
	Now time.Time
	// LastRun is when the node's last run started, zero if it never ran.
	LastRun time.Time
	// LastFacts is when the node last uploaded facts, zero if never.
	LastFacts time.Time
	// Running says the node has a run in flight (the store's view).
	Running bool
	// Force asks for a run now: a watched file changed or an operator
	// asked. It is still admitted only within capacity.
	Force bool
}

// Decision is the scheduler's answer to a check-in.
type Decision struct {
	// RunNow says the node runs now. The server records the run as
	// started on Backend and calls Finish when it ends.
	RunNow bool
	// Reason is one of the Reason constants.
	Reason string
	// Backend is the backend the run uses (when RunNow).
	Backend string
	// Run is the node's runs entry: what to run, its success codes and
	// timeout. It is nil when no entry matches the node. It belongs to
	// the Config and must not be changed.
	Run *Run
	// Env is the run's environment (when RunNow): the entry's env, the
	// flags of the rollouts that include the node, MUSTER_BACKEND and
	// MUSTER_RUN_REASON.
	Env map[string]string
	// Watch are the files whose change forces a run.
	Watch []string
	// UploadFacts asks the node to upload its facts.
	UploadFacts bool
	// NextCheckIn is when the node should check in again (after its run
	// ends, when it runs now).
	NextCheckIn time.Time
	// RetryAfter is set when a due run was refused for capacity: the
	// random wait until NextCheckIn ("later").
	RetryAfter time.Duration
	// Limit is Backend's capacity (when RunNow), for the store to enforce
	// across every server on the database (muster.NodeClaim).
	Limit muster.BackendLimit
}

// Options are a Scheduler's dependencies.
type Options struct {
	// Rand draws retry-after and check-in jitter. Default: a generator
	// seeded from math/rand/v2's global source.
	Rand *rand.Rand
}

// backend is a Backend's live state.
type backend struct {
	cfg      Backend
	burst    float64
	tokens   float64
	refilled time.Time
	inFlight int
	healthy  bool // the probe's verdict (true when there is no probe)
	load     float64
}

// Scheduler decides pull-mode runs. Build it with New.
type Scheduler struct {
	mu       sync.Mutex
	cfg      *Config
	rnd      *rand.Rand
	backends []*backend
	draining []*backend // dropped by Reload, runs still in flight
	reg      *registry
	ctl      controller
	started  bool
	clock    time.Time // the latest time seen
	warmAt   time.Time // from then on phases are equalised
	pruned   time.Time
	waiting  int
	stats    Stats
}

// New returns a Scheduler for cfg, which must come from Parse.
func New(cfg *Config, opts Options) *Scheduler {
	s := &Scheduler{rnd: opts.Rand, reg: newRegistry()}
	if s.rnd == nil {
		s.rnd = rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	}
	s.setConfig(cfg)
	return s
}

// Reload switches to cfg. Runs in flight stay counted against their
// backends; a backend cfg drops takes no new runs and is forgotten once
// its runs finish. The effective interval carries on, within cfg's floor
// and ceiling.
func (s *Scheduler) Reload(cfg *Config) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.setConfig(cfg)
	if s.started {
		iv := max(cfg.Floor, min(cfg.Ceiling, s.ctl.interval))
		s.ctl.setInterval(s.clock, iv)
	}
}

func (s *Scheduler) setConfig(cfg *Config) {
	old := map[string]*backend{}
	for _, b := range append(s.backends, s.draining...) {
		old[b.cfg.Name] = b
	}
	s.cfg, s.backends = cfg, nil
	for _, bc := range cfg.Backends {
		b := old[bc.Name]
		delete(old, bc.Name)
		if b == nil {
			b = &backend{healthy: bc.Health == nil, refilled: s.clock}
			b.tokens = -1 // filled below
		} else if (b.cfg.Health == nil) != (bc.Health == nil) {
			b.healthy = bc.Health == nil
		}
		b.cfg = bc
		b.burst = max(1, math.Ceil(bc.Rate/10))
		if b.tokens < 0 || b.tokens > b.burst {
			b.tokens = b.burst
		}
		s.backends = append(s.backends, b)
	}
	s.draining = s.draining[:0]
	for _, b := range old {
		if b.inFlight > 0 {
			s.draining = append(s.draining, b)
		}
	}
}

// Register tells the scheduler of nodes it has not seen check in yet, so
// that phases are equalised over the whole fleet from the start. The
// server calls it when it starts, with the nodes in its store.
func (s *Scheduler) Register(now time.Time, certnames ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.advance(now)
	for _, name := range certnames {
		s.reg.touch(name, s.clock)
	}
	s.warmAt = s.clock
}

// SetHealth records a backend's probe result: healthy is the probe's
// verdict and load the load it reports (ignored unless the backend's
// health has a max_load). Unknown names are ignored.
func (s *Scheduler) SetHealth(name string, healthy bool, load float64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if b := s.find(name); b != nil {
		b.healthy, b.load = healthy, load
	}
}

// SetLoad corrects the number of runs in flight on a backend, from the
// store (after a restart, or when another process started runs on it).
func (s *Scheduler) SetLoad(now time.Time, name string, running int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.advance(now)
	if b := s.find(name); b != nil {
		b.inFlight = max(0, running)
	}
}

// SetLoads corrects every backend's runs in flight from the store's count
// over all servers (muster.Nodes.BackendLoad): a backend absent from load
// has none. The server calls it every few seconds, so that its choice of
// backend sees the runs other servers started.
func (s *Scheduler) SetLoads(now time.Time, load map[string]int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.advance(now)
	for _, b := range append(s.backends, s.draining...) {
		b.inFlight = load[b.cfg.Name]
	}
}

// RunFor returns the runs entry of the current configuration that matches
// the node, or nil (see Config.RunFor).
func (s *Scheduler) RunFor(node string, groups []string) *Run {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cfg.RunFor(node, groups)
}

// DropFacts removes the facts the configuration blacklists (by dotted
// name, at any depth: "uptime*", "memory.system.available*") from facts,
// in place, so that always-changing facts are not stored.
func (s *Scheduler) DropFacts(facts map[string]any) {
	s.mu.Lock()
	f := s.cfg.Facts
	s.mu.Unlock()
	if len(f.Blacklist) > 0 {
		dropFacts(&f, "", facts)
	}
}

func dropFacts(f *Facts, prefix string, m map[string]any) {
	for k, v := range m {
		name := k
		if prefix != "" {
			name = prefix + "." + k
		}
		if f.Dropped(name) {
			delete(m, k)
		} else if sub, ok := v.(map[string]any); ok {
			dropFacts(f, name, sub)
		}
	}
}

// Refuse undoes a RunNow decision whose run the store refused because its
// backend was full (another server took the last place), and returns how
// long the node should wait before it checks in again.
func (s *Scheduler) Refuse(now time.Time, backend string) time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.advance(now)
	if b := s.find(backend); b != nil {
		b.inFlight = max(0, b.inFlight-1)
	}
	s.ctl.starts = max(0, s.ctl.starts-1)
	s.stats.Admitted--
	s.stats.Refused++
	return s.retryAfter()
}

// Finish records that a run admitted on backend ended. Call it once per
// run.
func (s *Scheduler) Finish(now time.Time, name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.advance(now)
	if b := s.find(name); b != nil {
		b.inFlight = max(0, b.inFlight-1)
	}
	for i, b := range s.draining {
		if b.inFlight == 0 {
			s.draining = append(s.draining[:i], s.draining[i+1:]...)
			break
		}
	}
}

func (s *Scheduler) find(name string) *backend {
	for _, b := range s.backends {
		if b.cfg.Name == name {
			return b
		}
	}
	for _, b := range s.draining {
		if b.cfg.Name == name {
			return b
		}
	}
	return nil
}

// advance moves the clock to now (never back), and lets the controller
// act and the registry forget silent nodes.
func (s *Scheduler) advance(now time.Time) {
	if !s.started {
		s.started, s.clock, s.pruned = true, now, now
		s.warmAt = now.Add(s.cfg.MaxCheckIn + s.cfg.RetryMax)
		s.ctl.start(now, s.cfg)
		for _, b := range s.backends {
			b.refilled = now
		}
		return
	}
	if !now.After(s.clock) {
		return
	}
	s.clock = now
	var m sample
	for _, b := range s.backends {
		if !b.usable() {
			continue
		}
		m.inFlight += b.inFlight
		m.maxRunning += b.cfg.MaxRunning
		if m.rate >= 0 && b.cfg.Rate > 0 {
			m.rate += b.cfg.Rate
		} else {
			m.rate = -1
		}
	}
	m.rate = max(0, m.rate)
	m.waiting, m.nodes = s.waiting, s.reg.n
	s.ctl.step(now, s.cfg, m)
	if expiry := s.cfg.Ceiling + 2*s.cfg.MaxCheckIn; now.Sub(s.pruned) >= time.Minute {
		s.pruned = now
		s.waiting -= s.reg.expire(now.Add(-expiry))
	}
}

// usable reports whether the probe lets the backend take runs.
func (b *backend) usable() bool {
	if !b.healthy {
		return false
	}
	h := b.cfg.Health
	return h == nil || h.MaxLoad == 0 || b.load <= h.MaxLoad
}

// score is how loaded the backend is, in [0, 1] when within its limits.
func (b *backend) score() float64 {
	sc := float64(b.inFlight) / float64(b.cfg.MaxRunning)
	if h := b.cfg.Health; h != nil && h.MaxLoad > 0 {
		sc = max(sc, b.load/h.MaxLoad)
	}
	return sc
}

// fits reports whether the backend can start a run at now. Slot runs
// leave a reserve of its limits to forced runs.
func (b *backend) fits(now time.Time, forced bool) bool {
	if b.cfg.Rate > 0 && now.After(b.refilled) {
		b.tokens = min(b.burst, b.tokens+now.Sub(b.refilled).Seconds()*b.cfg.Rate)
		b.refilled = now
	}
	limit, need := b.cfg.MaxRunning, 1.0
	if !forced {
		limit -= int(float64(b.cfg.MaxRunning) * reserveShare)
		need += min(b.burst-1, b.burst*reserveShare)
	}
	return b.usable() && b.inFlight < limit && (b.cfg.Rate == 0 || b.tokens >= need)
}

// pick returns the least-loaded backend that can start a run, or nil.
func (s *Scheduler) pick(now time.Time, forced bool) *backend {
	var best *backend
	for _, b := range s.backends {
		if b.fits(now, forced) && (best == nil || b.score() < best.score()) {
			best = b
		}
	}
	return best
}

// phase returns the node's phase: equalised over the fleet once the
// scheduler knows it, its own hash's before.
func (s *Scheduler) phase(nd *nodeState) float64 {
	if s.clock.Before(s.warmAt) {
		return phaseOf(nd.hash)
	}
	return s.reg.equalised(nd.hash)
}

// firstContact places the slot of a node the scheduler has no state for
// (a new node, or any node after the server restarted), and returns the
// reason it is due now, if it is.
func (s *Scheduler) firstContact(nd *nodeState, c CheckIn, pos, phase float64) string {
	nd.scheduled = true
	if c.LastRun.IsZero() {
		nd.nextDue = pos
		return ReasonFirst
	}
	age := c.Now.Sub(c.LastRun)
	next := nextCrossing(pos-float64(age)/float64(s.ctl.interval)+minGapCycles, phase)
	switch {
	case next >= pos:
		nd.nextDue = next
	case age < s.ctl.interval:
		// The slot was missed since the last run, but the node ran within
		// an interval: wait for the next slot rather than crowd in (after
		// a restart, the sweep may not be where the last server left it).
		nd.nextDue = nextCrossing(pos, phase)
	default:
		nd.nextDue = pos
		return ReasonOverdue
	}
	return ""
}

// Decide answers node c.Node's check-in.
func (s *Scheduler) Decide(c CheckIn) Decision {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.advance(c.Now)
	now := s.clock
	nd, _ := s.reg.touch(c.Node, now)
	pos, phase := s.ctl.position(now), s.phase(nd)
	reason := ReasonSlot
	if !nd.scheduled {
		if r := s.firstContact(nd, c, pos, phase); r != "" {
			reason = r
		}
	}
	d := Decision{Run: s.cfg.RunFor(c.Node, c.Groups),
		UploadFacts: c.LastFacts.IsZero() || now.Sub(c.LastFacts) >= s.cfg.Facts.UploadEvery}
	if d.Run != nil {
		d.Watch = d.Run.Watch
	}
	tol := float64(time.Millisecond) / float64(s.ctl.interval)
	due := pos+tol >= nd.nextDue
	switch {
	case d.Run == nil && !c.Force:
		// (A forced run of a node without a runs entry is a pull job's
		// command, or an operator's request that the server refuses.)
		d.Reason, d.NextCheckIn = ReasonNoRun, now.Add(s.capWait(s.cfg.MaxCheckIn))
		return d
	case c.Running:
		d.Reason, d.NextCheckIn = ReasonRunning, now.Add(s.retryAfter())
		return d
	case c.Force:
		reason = ReasonForced
	case !due:
		d.Reason = ReasonNotDue
		d.NextCheckIn = now.Add(s.waitFor(nd.nextDue - pos))
		return d
	}
	b := s.pick(now, c.Force)
	if b == nil {
		if !nd.waiting {
			nd.waiting = true
			s.waiting++
		}
		s.stats.Refused++
		d.Reason, d.RetryAfter = ReasonCapacity, s.retryAfter()
		d.NextCheckIn = now.Add(d.RetryAfter)
		return d
	}
	if nd.waiting {
		nd.waiting = false
		s.waiting--
	}
	b.inFlight++
	if b.cfg.Rate > 0 {
		b.tokens--
	}
	s.ctl.starts++
	s.stats.Admitted++
	if reason == ReasonForced {
		s.stats.Forced++
	}
	nd.nextDue = nextCrossing(pos+minGapCycles, phase)
	d.RunNow, d.Reason, d.Backend = true, reason, b.cfg.Name
	d.Limit = muster.BackendLimit{MaxRunning: b.cfg.MaxRunning, Rate: b.cfg.Rate, Burst: b.burst}
	d.Env = s.env(c, d.Run, b.cfg.Name, reason)
	d.NextCheckIn = now.Add(s.waitFor(nd.nextDue - pos))
	return d
}

// env builds a run's environment.
func (s *Scheduler) env(c CheckIn, r *Run, backend, reason string) map[string]string {
	var env map[string]string
	if r != nil {
		env = maps.Clone(r.Env)
	}
	if env == nil {
		env = map[string]string{}
	}
	for i := range s.cfg.Rollouts {
		if ro := &s.cfg.Rollouts[i]; ro.Includes(c.Node, c.Groups) {
			maps.Copy(env, ro.Env)
		}
	}
	env["MUSTER_BACKEND"] = backend
	env["MUSTER_RUN_REASON"] = reason
	return env
}

// waitFor turns a distance in cycles into a wait, rounded up to the
// millisecond and capped (with jitter) at MaxCheckIn. While the interval
// is changing, a long wait stops short of the slot, so that the node comes
// back for a fresh prediction (controller.approach).
func (s *Scheduler) waitFor(cycles float64) time.Duration {
	w := time.Duration(math.Ceil(cycles*float64(s.ctl.interval)/float64(time.Millisecond))) * time.Millisecond
	if w > s.cfg.MaxCheckIn {
		return s.capWait(s.cfg.MaxCheckIn)
	}
	if a := s.ctl.approach(); a > 0 && w > a+time.Second {
		return w - a
	}
	return max(w, time.Millisecond)
}

// capWait returns a wait in [max/2, max), so that nodes told to come back
// "later" spread out instead of returning together.
func (s *Scheduler) capWait(limit time.Duration) time.Duration {
	return limit/2 + time.Duration(s.rnd.Float64()*float64(limit/2))
}

// retryAfter returns a random wait in [RetryMin, RetryMax].
func (s *Scheduler) retryAfter() time.Duration {
	lo, hi := s.cfg.RetryMin, s.cfg.RetryMax
	return lo + time.Duration(s.rnd.Float64()*float64(hi-lo))
}
