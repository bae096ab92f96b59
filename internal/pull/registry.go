package pull

import (
	"slices"
	"time"
)

// buckets is how finely the registry counts hashes: 2^16 buckets, each
// holding its few hashes sorted, so that a rank costs a Fenwick prefix sum
// and a short binary search.
const (
	bucketBits = 16
	buckets    = 1 << bucketBits
	innerBits  = 64 - bucketBits
)

// nodeState is what the scheduler remembers of one node.
type nodeState struct {
	hash uint64
	seen time.Time
	// nextDue is the sweep position (in cycles) at which the node's next
	// slot run is due; valid once scheduled is set.
	nextDue   float64
	scheduled bool
	// waiting is set while the node is due but was refused for capacity.
	waiting bool
}

// registry is the fleet as the scheduler knows it: every node seen
// recently, and a Fenwick tree counting their hashes by bucket so that a
// node's rank among the fleet's hashes costs O(log buckets).
type registry struct {
	nodes map[string]*nodeState
	tree  []uint32   // Fenwick tree, 1-based, over bucket counts
	in    [][]uint64 // the hashes in each bucket, sorted
	n     int
}

func newRegistry() *registry {
	return &registry{nodes: map[string]*nodeState{}}
}

func (r *registry) add(h uint64, d int) {
	if r.tree == nil {
		r.tree, r.in = make([]uint32, buckets+1), make([][]uint64, buckets)
	}
	b := int(h >> innerBits)
	i, _ := slices.BinarySearch(r.in[b], h)
	if d > 0 {
		r.in[b] = slices.Insert(r.in[b], i, h)
	} else {
		r.in[b] = slices.Delete(r.in[b], i, i+1)
	}
	for i := b + 1; i <= buckets; i += i & -i {
		r.tree[i] = uint32(int(r.tree[i]) + d)
	}
	r.n += d
}

// before returns how many nodes sit in buckets below b.
func (r *registry) before(b int) int {
	s := 0
	for i := b; i > 0; i -= i & -i {
		s += int(r.tree[i])
	}
	return s
}

// touch returns the node's state, adding it if new, and marks it seen.
func (r *registry) touch(name string, now time.Time) (*nodeState, bool) {
	nd, ok := r.nodes[name]
	if !ok {
		nd = &nodeState{hash: hash64(name)}
		r.nodes[name] = nd
		r.add(nd.hash, 1)
	}
	if now.After(nd.seen) {
		nd.seen = now
	}
	return nd, !ok
}

// equalised returns the phase of a registered hash h: its rank among
// the fleet's hashes, centred, as a fraction in (0, 1). Nodes are 1/n
// apart, in hash order.
func (r *registry) equalised(h uint64) float64 {
	if r.n == 0 {
		return phaseOf(h)
	}
	b := int(h >> innerBits)
	i, _ := slices.BinarySearch(r.in[b], h)
	return (float64(r.before(b)+i) + 0.5) / float64(r.n)
}

// expire forgets the nodes not seen since cutoff and reports how many of
// them were waiting.
func (r *registry) expire(cutoff time.Time) (waiting int) {
	for name, nd := range r.nodes {
		if nd.seen.Before(cutoff) {
			if nd.waiting {
				waiting++
			}
			r.add(nd.hash, -1)
			delete(r.nodes, name)
		}
	}
	return waiting
}
