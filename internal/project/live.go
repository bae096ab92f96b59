package project

import (
	"sync"
	"sync/atomic"
)

// Live is a project that reloads: the server's, and the agent's. Current
// is cheap and safe from any goroutine; Reload reads the files again and
// swaps the new Project in whole, or keeps the old one when the new one
// does not load.
type Live struct {
	opts Options
	cur  atomic.Pointer[Project]
	mu   sync.Mutex // one reload at a time
	// onFacts hears of the targets whose inventory facts a reload changed.
	onFacts func(node string, facts []string)
}

// NewLive loads the project once; an error there is the caller's to
// report (a server should not start on a broken project).
func NewLive(o Options) (*Live, error) {
	p, err := Load(o)
	if err != nil {
		return nil, err
	}
	l := &Live{opts: o}
	l.cur.Store(p)
	return l, nil
}

// Current is the project in use now.
func (l *Live) Current() *Project { return l.cur.Load() }

// Options are the options the project loads with.
func (l *Live) Options() Options { return l.opts }

// Reload reads the project again. On success the new project is in use
// and returned; on failure the previous one stays and the error says
// which file and line broke.
func (l *Live) Reload() (*Project, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	p, err := Load(l.opts)
	if err != nil {
		return nil, err
	}
	old := l.cur.Swap(p)
	if l.onFacts != nil {
		for node, facts := range FactChanges(old, p) {
			l.onFacts(node, facts)
		}
	}
	return p, nil
}
