package events

import (
	"slices"
	"sync"
	"testing"
)

func TestFactsTopic(t *testing.T) {
	h := New()
	var mu sync.Mutex
	var got []FactChange
	remove := h.Facts().Handle(func(c FactChange) {
		mu.Lock()
		got = append(got, c)
		mu.Unlock()
	})
	h.Facts().Publish(FactChange{Node: "n1", Facts: []string{"os.release"}, Source: "inventory"})
	h.Facts().Wait()
	remove()
	h.Facts().Publish(FactChange{Node: "n2"})
	h.Facts().Wait()
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 1 || got[0].Node != "n1" || !slices.Equal(got[0].Facts, []string{"os.release"}) {
		t.Fatalf("handled %+v", got)
	}
}
