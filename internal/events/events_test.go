package events

import (
	"sync"
	"testing"
)

func pending(s *Subscription) bool {
	select {
	case <-s.C:
		return true
	default:
		return false
	}
}

func TestPublishReachesTheRightSubscribers(t *testing.T) {
	h := New()
	a, b, all := h.Subscribe(1), h.Subscribe(2), h.Subscribe(0)
	defer a.Close()
	defer b.Close()
	defer all.Close()
	tests := []struct {
		name         string
		publish      []int64
		a, b, anyJob bool
	}{
		{"job 1", []int64{1}, true, false, true},
		{"job 2", []int64{2}, false, true, true},
		{"both", []int64{1, 2}, true, true, true},
		{"an unwatched job", []int64{3}, false, false, true},
		{"nothing", nil, false, false, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h.Publish(tc.publish...)
			if got := [3]bool{pending(a), pending(b), pending(all)}; got != [3]bool{tc.a, tc.b, tc.anyJob} {
				t.Errorf("signals (job 1, job 2, all) = %v, want %v", got, [3]bool{tc.a, tc.b, tc.anyJob})
			}
		})
	}
}

// Signals merge, so a publisher never blocks on a slow subscriber.
func TestSignalsMerge(t *testing.T) {
	h := New()
	s := h.Subscribe(7)
	defer s.Close()
	for range 1000 {
		h.Publish(7)
	}
	if !pending(s) || pending(s) {
		t.Error("1000 publishes must leave exactly one pending signal")
	}
}

func TestCloseUnsubscribes(t *testing.T) {
	h := New()
	s := h.Subscribe(7)
	all := h.Subscribe(0)
	s.Close()
	s.Close()
	all.Close()
	h.Publish(7)
	if pending(s) || pending(all) || h.Subscribers() != 0 {
		t.Errorf("closed subscriptions still hear (subscribers %d)", h.Subscribers())
	}
}

func TestConcurrentUse(t *testing.T) {
	h := New()
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for j := range 200 {
				s := h.Subscribe(int64(i))
				h.Publish(int64(j % 8))
				s.Close()
			}
		})
	}
	wg.Wait()
	if n := h.Subscribers(); n != 0 {
		t.Errorf("%d subscriptions left", n)
	}
}
