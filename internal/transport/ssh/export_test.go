package ssh

import (
	"time"

	"github.com/muster-run/muster"
)

// SetClock replaces the Transport's clock, before its first use.
func SetClock(t *Transport, now func() time.Time) { t.now = now }

// PooledConn reports whether tg's connection is in the pool, and returns a
// channel closed when that connection ends.
func PooledConn(t *Transport, tg *muster.Target) (<-chan struct{}, bool) {
	p, err := t.resolve(tg)
	if err != nil {
		return nil, false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.conns[p.poolKey()]
	if s == nil {
		return nil, false
	}
	select {
	case <-s.ready:
	default:
		return nil, false
	}
	if s.c == nil {
		return nil, false
	}
	return s.c.done, true
}

// Dialling returns a channel closed when the dial of tg's connection ends,
// or nil when tg's connection is not being dialled.
func Dialling(t *Transport, tg *muster.Target) <-chan struct{} {
	p, err := t.resolve(tg)
	if err != nil {
		return nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if s := t.conns[p.poolKey()]; s != nil {
		return s.ready
	}
	return nil
}
