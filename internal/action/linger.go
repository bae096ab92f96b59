package action

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/muster-run/muster"
)

// Linger keeps targets' connections (and task caches) open between the
// actions of a long-running caller, such as the server running queued
// node-runs, which acts on the same targets again and again: a continuous
// job then pays one SSH handshake per node, not one per run. A target's
// connection is forgotten (Runner.Forget) once it has been idle for Idle,
// or sooner when more than Max targets are idle (the longest idle first),
// so a server that touches 100,000 nodes holds at most Max idle
// connections. Idle 0 forgets a target as soon as its action ends.
type Linger struct {
	r    *Runner
	idle time.Duration
	max  int

	mu         sync.Mutex
	inUse      map[string]int             // by target name
	idleSince  map[string]lingering       // targets not in use, connection open
	forgetting map[string]chan struct{}   // closed when that target is forgotten
	kick       chan struct{}              // buffer 1: too many idle, sweep now
	now        func() time.Time           // for tests
	forgets    func(*muster.Target) error // nil: r.Forget; for tests
}

type lingering struct {
	t     *muster.Target
	since time.Time
}

// NewLinger returns a Linger over r. Call Run to make it forget idle
// targets.
func NewLinger(r *Runner, idle time.Duration, max int) *Linger {
	return &Linger{r: r, idle: idle, max: max, inUse: map[string]int{}, idleSince: map[string]lingering{},
		forgetting: map[string]chan struct{}{}, kick: make(chan struct{}, 1), now: time.Now}
}

// Use marks t in use for one action: its connection is not forgotten
// until the matching Done. If t is being forgotten, Use waits for that
// to finish, so the action opens a fresh connection.
func (l *Linger) Use(t *muster.Target) {
	l.mu.Lock()
	for {
		ch := l.forgetting[t.Name]
		if ch == nil {
			break
		}
		l.mu.Unlock()
		<-ch
		l.mu.Lock()
	}
	delete(l.idleSince, t.Name)
	l.inUse[t.Name]++
	l.mu.Unlock()
}

// Done ends an action on t that Use began. With Idle 0 it forgets t at
// once (unless another action uses it).
func (l *Linger) Done(ctx context.Context, t *muster.Target) {
	l.mu.Lock()
	if l.inUse[t.Name]--; l.inUse[t.Name] > 0 {
		l.mu.Unlock()
		return
	}
	delete(l.inUse, t.Name)
	if l.idle <= 0 {
		done := make(chan struct{})
		l.forgetting[t.Name] = done
		l.mu.Unlock()
		l.forget(ctx, t, done)
		return
	}
	l.idleSince[t.Name] = lingering{t: t, since: l.now()}
	over := l.max > 0 && len(l.idleSince) > l.max
	l.mu.Unlock()
	if over {
		select {
		case l.kick <- struct{}{}:
		default:
		}
	}
}

// Idle returns how many targets are idle with their connections open.
func (l *Linger) Idle() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.idleSince)
}

// Run forgets idle targets until ctx ends: it looks every Idle/4 (but no
// more often than every 10ms, and at least every minute), and at once
// when more than Max are idle. What is still open when it returns is the
// Runner's to close (Runner.Cleanup and closing its transports).
func (l *Linger) Run(ctx context.Context) {
	if l.idle <= 0 {
		return
	}
	tick := time.NewTicker(min(max(l.idle/4, 10*time.Millisecond), time.Minute))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-l.kick:
		}
		l.sweep(ctx)
	}
}

// sweep forgets the targets idle for longer than Idle, and the longest
// idle ones beyond Max, up to 100 at a time.
func (l *Linger) sweep(ctx context.Context) {
	l.mu.Lock()
	now := l.now()
	all := make([]lingering, 0, len(l.idleSince))
	for _, e := range l.idleSince {
		all = append(all, e)
	}
	slices.SortFunc(all, func(a, b lingering) int { return a.since.Compare(b.since) })
	var drop []lingering
	for i, e := range all {
		if now.Sub(e.since) < l.idle && (l.max <= 0 || len(all)-i <= l.max) {
			break
		}
		drop = append(drop, e)
	}
	done := make(map[string]chan struct{}, len(drop))
	for _, e := range drop {
		delete(l.idleSince, e.t.Name)
		done[e.t.Name] = make(chan struct{})
		l.forgetting[e.t.Name] = done[e.t.Name]
	}
	l.mu.Unlock()

	var wg sync.WaitGroup
	window := make(chan struct{}, 100)
	for _, e := range drop {
		window <- struct{}{}
		wg.Go(func() {
			defer func() { <-window }()
			l.forget(ctx, e.t, done[e.t.Name])
		})
	}
	wg.Wait()
}

// forget forgets t, then lets waiting Use calls go on.
func (l *Linger) forget(ctx context.Context, t *muster.Target, done chan struct{}) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if l.forgets != nil {
		_ = l.forgets(t)
	} else {
		l.r.Forget(ctx, t)
	}
	l.mu.Lock()
	delete(l.forgetting, t.Name)
	l.mu.Unlock()
	close(done)
}
