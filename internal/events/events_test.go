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

func TestPublishNodeReachesTheRightSubscribers(t *testing.T) {
	h := New()
	web, db, allNodes, allJobs := h.SubscribeNode("web1"), h.SubscribeNode("db1"), h.SubscribeNode(""), h.Subscribe(0)
	defer web.Close()
	defer db.Close()
	defer allNodes.Close()
	defer allJobs.Close()
	tests := []struct {
		name              string
		publish           func()
		web, db, any, job bool
	}{
		{"web1", func() { h.PublishNode("web1") }, true, false, true, false},
		{"db1", func() { h.PublishNode("db1") }, false, true, true, false},
		{"both", func() { h.PublishNode("web1", "db1") }, true, true, true, false},
		{"an unwatched node", func() { h.PublishNode("web2") }, false, false, true, false},
		{"nothing", func() { h.PublishNode() }, false, false, false, false},
		// Jobs and nodes are separate topics.
		{"a job", func() { h.Publish(1) }, false, false, false, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.publish()
			got := [4]bool{pending(web), pending(db), pending(allNodes), pending(allJobs)}
			if want := [4]bool{tc.web, tc.db, tc.any, tc.job}; got != want {
				t.Errorf("signals (web1, db1, every node, every job) = %v, want %v", got, want)
			}
		})
	}
}

func TestCloseNodeSubscriptions(t *testing.T) {
	h := New()
	a, b, all := h.SubscribeNode("web1"), h.SubscribeNode("web1"), h.SubscribeNode("")
	if n := h.Subscribers(); n != 3 {
		t.Fatalf("%d subscribers, want 3", n)
	}
	a.Close()
	a.Close()
	h.PublishNode("web1")
	if pending(a) || !pending(b) || !pending(all) {
		t.Error("closing one subscription of a node must leave the other")
	}
	b.Close()
	all.Close()
	h.PublishNode("web1")
	if pending(b) || pending(all) || h.Subscribers() != 0 {
		t.Errorf("closed subscriptions still hear (subscribers %d)", h.Subscribers())
	}
}

func TestConcurrentNodeUse(t *testing.T) {
	h := New()
	names := []string{"a", "b", "c", "d"}
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for j := range 200 {
				s := h.SubscribeNode(names[i%4])
				h.PublishNode(names[j%4])
				h.Publish(int64(j))
				s.Close()
			}
		})
	}
	wg.Wait()
	if n := h.Subscribers(); n != 0 {
		t.Errorf("%d subscriptions left", n)
	}
}
