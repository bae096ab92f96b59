package pull

import (
	"crypto/sha256"
	"encoding/binary"
	"math/bits"
	"time"
)

// hash64 is the first 8 bytes of the SHA-256 of certname, big-endian.
func hash64(certname string) uint64 {
	sum := sha256.Sum256([]byte(certname))
	return binary.BigEndian.Uint64(sum[:8])
}

// Phase returns where certname sits in any interval, as a fraction in
// [0, 1). It depends on the certname alone.
func Phase(certname string) float64 {
	return phaseOf(hash64(certname))
}

func phaseOf(h uint64) float64 {
	// The top 53 bits are exact in a float64, and the result stays below 1.
	return float64(h>>11) / (1 << 53)
}

// Slot returns certname's offset in [0, interval): its hash scaled into
// the interval. It is spread like hash mod interval, but nodes keep the
// same order at every interval. A non-positive interval gives 0.
func Slot(certname string, interval time.Duration) time.Duration {
	if interval <= 0 {
		return 0
	}
	hi, _ := bits.Mul64(hash64(certname), uint64(interval))
	return time.Duration(hi)
}

// NextDue returns the first instant strictly after last at which
// certname's slot comes round, counting intervals from the Unix epoch: a
// time t with (t - epoch) mod interval == Slot(certname, interval) and
// last < t <= last + interval. A non-positive interval returns last.
func NextDue(certname string, last time.Time, interval time.Duration) time.Time {
	if interval <= 0 {
		return last
	}
	slot := Slot(certname, interval)
	r := offsetIn(last, interval)
	d := slot - r
	if d <= 0 {
		d += interval
	}
	return last.Add(d)
}

// offsetIn returns (t - Unix epoch) mod interval, in [0, interval), for
// any t, including the zero Time.
func offsetIn(t time.Time, interval time.Duration) time.Duration {
	iv := uint64(interval)
	secs, nsec := t.Unix(), uint64(t.Nanosecond())
	// (secs*1e9 + nsec) mod iv, with secs possibly negative.
	s := secs % int64(iv)
	if s < 0 {
		s += int64(iv)
	}
	hi, lo := bits.Mul64(uint64(s), uint64(time.Second))
	r := bits.Rem64(hi, lo, iv)
	r = (r + nsec%iv) % iv
	return time.Duration(r)
}
