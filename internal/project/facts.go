package project

// facts.go: the inventory's facts changing on reload, per target, for the
// fact-change event (internal/events) that change-driven jobs' facts_used
// listen to.

import "github.com/muster-run/muster"

// OnFactsChanged registers fn, called after each successful Reload with
// every target whose inventory facts changed (a target new to the
// inventory, with facts, counts; one that left does not) and the dotted
// paths of its facts that changed. Only one function is kept.
func (l *Live) OnFactsChanged(fn func(node string, facts []string)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.onFacts = fn
}

// FactChanges compares the targets' inventory facts of two projects.
func FactChanges(old, new *Project) map[string][]string {
	before := map[string]map[string]any{}
	if old != nil && old.Inventory != nil {
		for _, t := range old.Inventory.Targets() {
			before[t.Name] = t.Facts
		}
	}
	out := map[string][]string{}
	if new == nil || new.Inventory == nil {
		return out
	}
	for _, t := range new.Inventory.Targets() {
		if c := muster.ChangedFacts(before[t.Name], t.Facts); len(c) > 0 {
			out[t.Name] = c
		}
	}
	return out
}
