// Package procfs reads the Linux process table from /proc: what the test
// helpers and benchmarks need to find a process's children and account
// for their CPU time.
package procfs

import (
	"errors"
	"os"
	"strconv"
	"strings"
)

// Proc is one process's /proc/PID/stat entry, in part. Times are in clock
// ticks (getconf CLK_TCK).
type Proc struct {
	PID, PPID      int
	State          byte // R, S, D, Z, ...
	Utime, Stime   int64
	CUtime, CStime int64 // of its children that it waited for
}

// Read returns pid's entry.
func Read(pid int) (Proc, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return Proc{}, err
	}
	return parse(pid, string(b))
}

// parse reads a stat line. The command name, in parentheses, may hold
// spaces and parentheses itself: the fields start after the last ")".
func parse(pid int, s string) (Proc, error) {
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return Proc{}, errors.New("procfs: bad stat line")
	}
	f := strings.Fields(s[i+1:])
	// f[0] is field 3 (state), so field n is f[n-3]: ppid 4, utime 14 ...
	if len(f) < 15 || f[0] == "" {
		return Proc{}, errors.New("procfs: short stat line")
	}
	n := func(k int) int64 { v, _ := strconv.ParseInt(f[k], 10, 64); return v }
	return Proc{PID: pid, PPID: int(n(1)), State: f[0][0], Utime: n(11), Stime: n(12), CUtime: n(13), CStime: n(14)}, nil
}

// All returns every process's entry; processes that end while they are
// listed are left out.
func All() []Proc {
	ents, _ := os.ReadDir("/proc")
	var out []Proc
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if p, err := Read(pid); err == nil {
			out = append(out, p)
		}
	}
	return out
}

// Children returns the pids whose parent is ppid.
func Children(ppid int) []int {
	var out []int
	for _, p := range All() {
		if p.PPID == ppid {
			out = append(out, p.PID)
		}
	}
	return out
}

// Descendants returns every process below pid, breadth first.
func Descendants(pid int) []int {
	children := map[int][]int{}
	for _, p := range All() {
		children[p.PPID] = append(children[p.PPID], p.PID)
	}
	var out []int
	for queue := []int{pid}; len(queue) > 0; queue = queue[1:] {
		for _, c := range children[queue[0]] {
			out = append(out, c)
			queue = append(queue, c)
		}
	}
	return out
}

// CPUModel returns the host's CPU model from /proc/cpuinfo, for benchmark
// reports ("unknown CPU" when it cannot tell).
func CPUModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown CPU"
	}
	for l := range strings.SplitSeq(string(b), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU"
}
