// Package pull is the scheduler of pull mode: the server calls it on every
// agent check-in, and it answers whether the node runs now, on which
// backend, with which command and environment, and when to check in next
// (docs/architecture.md, "Where the next features plug in"; DESIGN.md,
// "Pull mode").
//
// # The model
//
// Every node has a phase, a fixed point in the cycle taken from a SHA-256
// hash of its certname (Phase, Slot, NextDue). The scheduler keeps a
// sweep: a position in cycles that advances by one cycle every effective
// interval. A node is due when the sweep passes its phase, so nodes come
// due in hash order at a rate of fleet size / effective interval.
//
// Two refinements make the run curve flat rather than merely spread:
//
//   - Equalised phases. Hashes of n certnames are uniform but random: the
//     number that land in any one second of a 30-minute interval is
//     Poisson, so with 100,000 nodes runs per second would vary by about
//     13%. Once the scheduler knows the fleet (Register, or a full round of
//     check-ins), a node's phase is the rank of its hash among the fleet's
//     hashes (the empirical distribution function), which spaces nodes
//     exactly 1/n apart in the same order. Adding or removing a node moves
//     every other by at most 1/n of the interval.
//   - Continuous sweep. Changing the effective interval changes only how
//     fast the sweep moves, never where nodes sit, so a change of interval
//     shortens or stretches the gaps between runs without bringing a crowd
//     of nodes due at once.
//
// # Capacity
//
// Backends are whatever runs take their work from (Puppet compile
// servers, a package mirror, ...). Each has a maximum of concurrent runs,
// an optional rate of run starts (a token bucket with a burst of a tenth
// of a second) and an optional health probe, whose results the caller
// feeds in with SetHealth. A run is admitted on the least-loaded healthy
// backend that has room; a due node that fits nowhere is told "later",
// with a random retry-after so that refused nodes do not come back
// together. Slot runs leave a reserve (a tenth of each limit) to forced
// runs (a watched file changed, an operator asked), which are admitted
// ahead of slot runs but never beyond a backend's limits.
//
// # The interval controller
//
// The effective interval moves between the configured floor and ceiling
// to hold the measured utilisation (runs in flight over maximum running,
// or starts per second over the rate limits, whichever is higher) at a
// target, 80% by default: runs come more often while capacity is free and
// less often when it is short. It is an integral controller on the
// logarithm of the interval with a time constant of 10 minutes, fed with
// utilisation smoothed over a minute and a term for due nodes left
// waiting, and a dead band of 2%. The loop's own delays (a minute of
// smoothing, a run's length, and nodes learning of a new interval at their
// next check-in, at most MaxCheckIn later) are several times shorter than
// the time constant, so it settles without overshoot in normal operation,
// and the dead band keeps it still once there. While the interval moves, a
// node's predicted slot goes stale as it waits, so nodes are asked back
// shortly before their slot (tens of seconds, from how fast the interval
// is moving) for a fresh prediction; this keeps runs on their slots, and
// the curve flat, during a change.
//
// # What the caller does
//
// The scheduler does no I/O, starts no goroutines and reads no clock:
// every time comes in as an argument, and the retry jitter comes from an
// injectable random source. The server
//
//   - calls Decide on every check-in with the node's certname, inventory
//     groups, last run start, last fact upload, whether it has a run in
//     flight, and whether the run is forced;
//   - calls Finish when an admitted run ends (once per run), and SetLoad
//     to correct the in-flight count from the store (after a restart, or
//     when runs were lost);
//   - calls SetHealth with each backend's probe results;
//   - calls Register at start with the nodes it knows, and Reload when
//     pull.yaml changes.
//
// A Scheduler is safe for concurrent use.
package pull
