package executor

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Rolling describes a rolling run: a sliding window of Size targets (or
// Percent of them), Canary targets first on their own, a failure limit
// that stops new starts, and a Pause before each new batch.
type Rolling struct {
	// Size is the window: at most this many targets at once. Zero means
	// Percent, or no batching at all.
	Size    int
	Percent float64
	// Canary targets run first, alone; if any fails, nothing else starts.
	Canary int
	// MaxFailures is how many failures are tolerated; one more stops new
	// starts. -1 (or unset with MaxFailuresPercent 0) means no limit.
	MaxFailures        int
	MaxFailuresPercent float64
	// Pause is waited before each batch after the first: every Size
	// started targets (and after the canaries).
	Pause time.Duration
}

// NoLimit is the MaxFailures value that tolerates any number of failures.
const NoLimit = -1

// Active reports whether r changes how targets are started.
func (r *Rolling) Active() bool {
	return r != nil && (r.Size > 0 || r.Percent > 0 || r.Canary > 0 || r.MaxFailures >= 0 || r.MaxFailuresPercent > 0 || r.Pause > 0)
}

// window returns the batch size for total targets (0 = unbounded).
func (r *Rolling) window(total int) int {
	if r.Size > 0 {
		return r.Size
	}
	if r.Percent > 0 {
		return max(1, int(math.Ceil(r.Percent*float64(total)/100)))
	}
	return 0
}

// limit returns the most failures tolerated among total targets, or -1.
func (r *Rolling) limit(total int) int {
	if r.MaxFailuresPercent > 0 {
		return int(math.Floor(r.MaxFailuresPercent * float64(total) / 100))
	}
	return r.MaxFailures
}

// ParseCount parses "5" or "10%" (for --batch and --max-failures).
func ParseCount(flag, s string) (n int, pct float64, err error) {
	s = strings.TrimSpace(s)
	if p, ok := strings.CutSuffix(s, "%"); ok {
		pct, err = strconv.ParseFloat(p, 64)
		if err != nil || pct <= 0 || pct > 100 {
			return 0, 0, fmt.Errorf("%s %q: want a number of targets (5) or a percentage between 0 and 100 (10%%)", flag, s)
		}
		return 0, pct, nil
	}
	n, err = strconv.Atoi(s)
	if err != nil || n < 0 {
		return 0, 0, fmt.Errorf("%s %q: want a number of targets (5) or a percentage (10%%)", flag, s)
	}
	return n, 0, nil
}
