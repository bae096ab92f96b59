// Package events is the server's publish/subscribe hub. Whatever changes a
// job (a submit, a run starting or ending, new live output, a cancel)
// publishes the job's id; whatever changes a pull-mode node (its
// certificate signed or revoked, a run queued for it) publishes its
// certname. Whoever shows a job or waits on a node (the API's event
// stream, an agent's long-poll, the dashboard next) subscribes to it and
// reads the store when told, instead of polling it on a timer. The store
// stays the source of truth: an event says "look now", never what
// changed, so a missed or merged event costs nothing but a moment's
// delay.
//
// Jobs and nodes are separate topics: a subscription to every job hears
// nothing of nodes, and the other way round.
//
// The hub is in memory and per process. Changes made by another server on
// the same PostgreSQL database reach a subscriber through its fallback
// poll, which can therefore be slow.
package events

import (
	"sync"

	"github.com/muster-run/muster"
)

// Hub fans job-change and node-change notices out to subscribers. The
// zero value is not usable; call New.
type Hub struct {
	mu       sync.Mutex
	subs     map[int64]map[*Subscription]struct{}
	all      map[*Subscription]struct{}
	nodes    map[string]map[*Subscription]struct{}
	allNodes map[*Subscription]struct{}
	facts    Topic[FactChange]
	results  Topic[muster.ResultChange]
}

// New returns an empty hub.
func New() *Hub {
	return &Hub{
		subs: map[int64]map[*Subscription]struct{}{}, all: map[*Subscription]struct{}{},
		nodes: map[string]map[*Subscription]struct{}{}, allNodes: map[*Subscription]struct{}{},
	}
}

// Subscription receives a signal on C after each change to what it
// watches. Signals merge: several changes before the subscriber looks
// leave one signal, so C never blocks a publisher.
type Subscription struct {
	C      <-chan struct{}
	c      chan struct{}
	hub    *Hub
	onNode bool   // a node subscription (SubscribeNode)
	job    int64  // 0: every job
	node   string // "": every node
}

// Subscribe watches one job; job 0 watches every job. Close the
// subscription when done.
func (h *Hub) Subscribe(job int64) *Subscription {
	s := h.newSub()
	s.job = job
	h.mu.Lock()
	defer h.mu.Unlock()
	if job == 0 {
		h.all[s] = struct{}{}
		return s
	}
	add(h.subs, job, s)
	return s
}

// SubscribeNode watches one node by certname; "" watches every node.
// Close the subscription when done.
func (h *Hub) SubscribeNode(name string) *Subscription {
	s := h.newSub()
	s.onNode, s.node = true, name
	h.mu.Lock()
	defer h.mu.Unlock()
	if name == "" {
		h.allNodes[s] = struct{}{}
		return s
	}
	add(h.nodes, name, s)
	return s
}

func (h *Hub) newSub() *Subscription {
	c := make(chan struct{}, 1)
	return &Subscription{C: c, c: c, hub: h}
}

func add[K comparable](m map[K]map[*Subscription]struct{}, k K, s *Subscription) {
	if m[k] == nil {
		m[k] = map[*Subscription]struct{}{}
	}
	m[k][s] = struct{}{}
}

func remove[K comparable](m map[K]map[*Subscription]struct{}, k K, s *Subscription) {
	delete(m[k], s)
	if len(m[k]) == 0 {
		delete(m, k)
	}
}

// Close stops the subscription. It is safe to call more than once.
func (s *Subscription) Close() {
	h := s.hub
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case s.onNode && s.node == "":
		delete(h.allNodes, s)
	case s.onNode:
		remove(h.nodes, s.node, s)
	case s.job == 0:
		delete(h.all, s)
	default:
		remove(h.subs, s.job, s)
	}
}

// Publish tells the subscribers of each job, and those of every job, that
// it changed. It never blocks.
func (h *Hub) Publish(jobs ...int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	signalAll(h.subs, h.all, jobs)
}

// signalAll signals the subscribers of each key, and, when there is any
// key, those of every key.
func signalAll[K comparable](subs map[K]map[*Subscription]struct{}, every map[*Subscription]struct{}, keys []K) {
	for _, k := range keys {
		for s := range subs[k] {
			s.signal()
		}
	}
	if len(keys) > 0 {
		for s := range every {
			s.signal()
		}
	}
}

// PublishNode tells the subscribers of each node (by certname), and those
// of every node, that it changed. It never blocks.
func (h *Hub) PublishNode(names ...string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	signalAll(h.nodes, h.allNodes, names)
}

// PublishAllNodes tells every node subscriber that its node may have
// changed (after news of nodes may have been missed). It never blocks.
func (h *Hub) PublishAllNodes() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, subs := range h.nodes {
		for s := range subs {
			s.signal()
		}
	}
	for s := range h.allNodes {
		s.signal()
	}
}

func (s *Subscription) signal() {
	select {
	case s.c <- struct{}{}:
	default: // a signal is already pending: they merge
	}
}

// Subscribers counts the open subscriptions, of jobs and of nodes, for
// metrics and tests.
func (h *Hub) Subscribers() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := len(h.all) + len(h.allNodes)
	for _, m := range h.subs {
		n += len(m)
	}
	for _, m := range h.nodes {
		n += len(m)
	}
	return n
}
