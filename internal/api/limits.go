package api

import (
	"sync"
	"time"
)

// The limits' label values in the muster_api_limit gauge and the
// muster_api_limit_refusals_total counter.
const (
	limitTargetsPerJob = "targets_per_job"
	limitJobsPerMinute = "jobs_per_minute"
)

// maxBuckets is how many token buckets a rateLimiter keeps before it
// drops the full ones (those of tokens that have not submitted lately).
const maxBuckets = 1024

// rateLimiter is a token bucket per key (an API token's name): each holds
// up to burst jobs and refills at burst per window. It lives in memory, so
// each server process enforces it on its own.
type rateLimiter struct {
	mu      sync.Mutex
	burst   float64
	window  time.Duration
	buckets map[string]*bucket
}

type bucket struct {
	tokens float64
	at     time.Time // when tokens was last brought up to date
}

func newRateLimiter(burst int, window time.Duration) *rateLimiter {
	return &rateLimiter{burst: float64(burst), window: window, buckets: map[string]*bucket{}}
}

// refill brings b up to now. A clock that went back adds nothing.
func (l *rateLimiter) refill(b *bucket, now time.Time) {
	if d := now.Sub(b.at); d > 0 {
		b.tokens = min(l.burst, b.tokens+float64(d)*l.burst/float64(l.window))
		b.at = now
	}
}

// take spends one job of key's bucket at now. When the bucket is empty it
// spends nothing and returns how long until it holds one job.
func (l *rateLimiter) take(key string, now time.Time) (time.Duration, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buckets[key]
	if b == nil {
		if len(l.buckets) >= maxBuckets {
			l.prune(now)
		}
		b = &bucket{tokens: l.burst, at: now}
		l.buckets[key] = b
	}
	l.refill(b, now)
	if b.tokens < 1 {
		return time.Duration((1 - b.tokens) * float64(l.window) / l.burst), false
	}
	b.tokens--
	return 0, true
}

// refund gives back a job taken from key's bucket that was not used.
func (l *rateLimiter) refund(key string, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if b := l.buckets[key]; b != nil {
		l.refill(b, now)
		b.tokens = min(l.burst, b.tokens+1)
	}
}

// prune drops the buckets that are full again: they hold nothing a new
// bucket would not.
func (l *rateLimiter) prune(now time.Time) {
	for k, b := range l.buckets {
		if l.refill(b, now); b.tokens >= l.burst {
			delete(l.buckets, k)
		}
	}
}
