package events

// change.go: the two topics that carry what changed (unlike jobs and
// nodes, which only say "look now"): facts changing on a node, which
// both the inventory's reload and agents' fact uploads publish, and a
// node's result changing in a change-driven job. Handlers are called in
// a goroutine of their own per publish, so a slow one never holds up
// the publisher; a topic is per process, like the hub.

import (
	"sync"

	"github.com/muster-run/muster"
)

// FactChange says which facts (dotted paths, see muster.ChangedFacts)
// changed on a node, and where the news came from ("inventory" or
// "agent").
type FactChange struct {
	Node   string
	Facts  []string
	Source string
}

// Topic fans values out to handlers.
type Topic[T any] struct {
	mu   sync.Mutex
	next int
	fns  map[int]func(T)
	wg   sync.WaitGroup
}

// Handle registers fn and returns the function that removes it.
func (t *Topic[T]) Handle(fn func(T)) (remove func()) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.fns == nil {
		t.fns = map[int]func(T){}
	}
	id := t.next
	t.next++
	t.fns[id] = fn
	return func() {
		t.mu.Lock()
		delete(t.fns, id)
		t.mu.Unlock()
	}
}

// Publish calls every handler with v, each in a goroutine.
func (t *Topic[T]) Publish(v T) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, fn := range t.fns {
		t.wg.Add(1)
		go func() {
			defer t.wg.Done()
			fn(v)
		}()
	}
}

// Wait returns once the handlers called so far have returned.
func (t *Topic[T]) Wait() { t.wg.Wait() }

// Facts is the hub's fact-change topic.
func (h *Hub) Facts() *Topic[FactChange] { return &h.facts }

// Results is the hub's result-change topic (muster.ResultChange, as the
// dispatcher reports it after the change is stored).
func (h *Hub) Results() *Topic[muster.ResultChange] { return &h.results }
