//go:build linux

package agent

import (
	"bufio"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// trimResident gives back the resident pages of the agent's own
// executable that only start-up and past runs touched: the one binary
// holds the server, the databases and the CLI, whose code and read-only
// data an idle agent never runs, yet the kernel maps them in 64 KiB
// chunks as start-up reads around them. The mappings are read-only and
// file-backed, so MADV_DONTNEED only drops them from the process: a page
// used again comes back from the page cache (a minor fault). Writable
// mappings are never touched.
func trimResident() {
	exe, err := os.Executable()
	if err != nil {
		return
	}
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		return
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 6 || fields[5] != exe || strings.Contains(fields[1], "w") {
			continue
		}
		lo, hi, ok := strings.Cut(fields[0], "-")
		if !ok {
			continue
		}
		start, err1 := strconv.ParseUint(lo, 16, 64)
		end, err2 := strconv.ParseUint(hi, 16, 64)
		if err1 != nil || err2 != nil || end <= start {
			continue
		}
		_, _, _ = syscall.Syscall(syscall.SYS_MADVISE, uintptr(start), uintptr(end-start), syscall.MADV_DONTNEED)
	}
}
