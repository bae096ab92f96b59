package pull

import (
	"fmt"
	"math"
	"slices"
	"testing"
	"time"
)

func TestSlotDeterministicAndInRange(t *testing.T) {
	for _, iv := range []time.Duration{time.Nanosecond, time.Second, 30 * time.Minute, 24 * time.Hour} {
		for i := range 1000 {
			name := fmt.Sprintf("web%d.example.com", i)
			s := Slot(name, iv)
			if s < 0 || s >= iv {
				t.Fatalf("Slot(%q, %s) = %s, outside [0, %s)", name, iv, s, iv)
			}
			if s2 := Slot(name, iv); s2 != s {
				t.Fatalf("Slot(%q) not deterministic: %s then %s", name, s, s2)
			}
		}
	}
	if Slot("a", 0) != 0 || Slot("a", -time.Second) != 0 {
		t.Error("a non-positive interval should give slot 0")
	}
	// Scaling keeps nodes in order: a slot in a longer interval is the
	// same fraction of it.
	a, b := Slot("alpha", time.Hour), Slot("alpha", 2*time.Hour)
	if d := b - 2*a; d < 0 || d > 2 {
		t.Errorf("Slot at 2h = %s, want twice Slot at 1h = %s", b, 2*a)
	}
	if p := Phase("alpha"); math.Abs(p*float64(time.Hour)-float64(a)) > 1 {
		t.Errorf("Phase %v disagrees with Slot %s", p, a)
	}
}

// TestSlotUniform puts 100,000 certnames into 60 one-minute buckets of a
// one-hour interval: each should hold 1/60th within a few percent (a
// Poisson spread is 2.4% here).
func TestSlotUniform(t *testing.T) {
	const n, nb = 100_000, 60
	counts := make([]int, nb)
	for i := range n {
		counts[Slot(fmt.Sprintf("node%06d.example.com", i), time.Hour)/time.Minute]++
	}
	want := float64(n) / nb
	for b, c := range counts {
		if dev := math.Abs(float64(c)-want) / want; dev > 0.08 {
			t.Errorf("bucket %d holds %d, %.1f%% off %.0f", b, c, 100*dev, want)
		}
	}
}

// TestEqualisedPhases checks that registered nodes sit exactly 1/n apart,
// in hash order.
func TestEqualisedPhases(t *testing.T) {
	const n = 20_000
	r := newRegistry()
	var hs []uint64
	for i := range n {
		nd, _ := r.touch(fmt.Sprintf("node%06d.example.com", i), time.Unix(0, 0))
		hs = append(hs, nd.hash)
	}
	slices.Sort(hs)
	for i, h := range hs {
		if got, want := r.equalised(h), (float64(i)+0.5)/n; math.Abs(got-want) > 1e-12 {
			t.Fatalf("rank %d: phase %v, want %v", i, got, want)
		}
	}
	// Forgetting nodes keeps the rest evenly spaced.
	r.expire(time.Unix(1, 0))
	if r.n != 0 {
		t.Fatalf("after expiry %d nodes remain", r.n)
	}
}

func TestNextDue(t *testing.T) {
	iv := 30 * time.Minute
	base := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	for i := range 500 {
		name := fmt.Sprintf("db%d", i)
		slot := Slot(name, iv)
		for _, last := range []time.Time{base, base.Add(time.Duration(i) * time.Second * 7), base.Add(-time.Hour)} {
			next := NextDue(name, last, iv)
			if !next.After(last) || next.Sub(last) > iv {
				t.Fatalf("NextDue(%q, %s) = %s: not in (last, last+interval]", name, last, next)
			}
			if off := offsetIn(next, iv); off != slot {
				t.Fatalf("NextDue(%q) = %s is at offset %s, want slot %s", name, next, off, slot)
			}
		}
		// At exactly a slot, the next is one interval later.
		at := NextDue(name, base, iv)
		if got := NextDue(name, at, iv); got.Sub(at) != iv {
			t.Fatalf("NextDue from a slot = +%s, want +%s", got.Sub(at), iv)
		}
	}
	// The zero Time and times before the epoch work too.
	for _, last := range []time.Time{{}, time.Unix(-12345, 678)} {
		next := NextDue("x", last, iv)
		if !next.After(last) || next.Sub(last) > iv || offsetIn(next, iv) != Slot("x", iv) {
			t.Errorf("NextDue from %s = %s", last, next)
		}
	}
	if got := NextDue("x", base, 0); !got.Equal(base) {
		t.Errorf("NextDue with interval 0 = %s, want last", got)
	}
}
