// Package events is the server's publish/subscribe hub. Whatever changes a
// job (a submit, a run starting or ending, new live output, a cancel)
// publishes the job's id; whoever shows a job (the API's event stream, the
// dashboard next) subscribes to it and reads the store when told, instead
// of polling it on a timer. The store stays the source of truth: an event
// says "look now", never what changed, so a missed or merged event costs
// nothing but a moment's delay.
//
// The hub is in memory and per process. Changes made by another server on
// the same PostgreSQL database reach a subscriber through its fallback
// poll, which can therefore be slow.
package events

import "sync"

// Hub fans job-change notices out to subscribers. The zero value is not
// usable; call New.
type Hub struct {
	mu   sync.Mutex
	subs map[int64]map[*Subscription]struct{}
	all  map[*Subscription]struct{}
}

// New returns an empty hub.
func New() *Hub {
	return &Hub{subs: map[int64]map[*Subscription]struct{}{}, all: map[*Subscription]struct{}{}}
}

// Subscription receives a signal on C after each change to what it
// watches. Signals merge: several changes before the subscriber looks
// leave one signal, so C never blocks a publisher.
type Subscription struct {
	C   <-chan struct{}
	c   chan struct{}
	hub *Hub
	job int64 // 0: every job
}

// Subscribe watches one job; job 0 watches every job. Close the
// subscription when done.
func (h *Hub) Subscribe(job int64) *Subscription {
	c := make(chan struct{}, 1)
	s := &Subscription{C: c, c: c, hub: h, job: job}
	h.mu.Lock()
	defer h.mu.Unlock()
	if job == 0 {
		h.all[s] = struct{}{}
		return s
	}
	if h.subs[job] == nil {
		h.subs[job] = map[*Subscription]struct{}{}
	}
	h.subs[job][s] = struct{}{}
	return s
}

// Close stops the subscription. It is safe to call more than once.
func (s *Subscription) Close() {
	h := s.hub
	h.mu.Lock()
	defer h.mu.Unlock()
	if s.job == 0 {
		delete(h.all, s)
		return
	}
	delete(h.subs[s.job], s)
	if len(h.subs[s.job]) == 0 {
		delete(h.subs, s.job)
	}
}

// Publish tells the subscribers of each job, and those of every job, that
// it changed. It never blocks.
func (h *Hub) Publish(jobs ...int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, job := range jobs {
		for s := range h.subs[job] {
			s.signal()
		}
	}
	if len(jobs) > 0 {
		for s := range h.all {
			s.signal()
		}
	}
}

func (s *Subscription) signal() {
	select {
	case s.c <- struct{}{}:
	default: // a signal is already pending: they merge
	}
}

// Subscribers counts the open subscriptions, for metrics and tests.
func (h *Hub) Subscribers() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := len(h.all)
	for _, m := range h.subs {
		n += len(m)
	}
	return n
}
