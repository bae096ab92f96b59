package procfs

import (
	"os"
	"os/exec"
	"slices"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	p, err := parse(7, "7 (a) b (c)) S 1 7 7 0 -1 4194560 100 0 0 0 12 34 56 78 20 0 1 0 5 0 0")
	if err != nil || p.PID != 7 || p.PPID != 1 || p.State != 'S' || p.Utime != 12 || p.Stime != 34 || p.CUtime != 56 || p.CStime != 78 {
		t.Errorf("parse = %+v, %v", p, err)
	}
	for _, bad := range []string{"", "7 (x", "7 (x) S 1"} {
		if _, err := parse(7, bad); err == nil {
			t.Errorf("parse(%q) gave no error", bad)
		}
	}
}

func TestChildrenAndDescendants(t *testing.T) {
	cmd := exec.Command("/bin/sh", "-c", "sleep 30 & wait")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	me := os.Getpid()
	if !slices.Contains(Children(me), cmd.Process.Pid) {
		t.Errorf("Children(%d) lacks the shell %d", me, cmd.Process.Pid)
	}
	found := false
	for i := 0; i < 3000 && !found; i++ { // the shell starts sleep a moment later
		d := Descendants(me)
		found = len(d) >= 2 && slices.Contains(d, cmd.Process.Pid)
		time.Sleep(10 * time.Millisecond)
	}
	if !found {
		t.Errorf("Descendants(%d) never held the shell and its sleep", me)
	}
	self, err := Read(me)
	if err != nil || self.PID != me || self.PPID != os.Getppid() {
		t.Errorf("Read(self) = %+v, %v", self, err)
	}
}
