package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/muster-run/muster/internal/api"
	"github.com/muster-run/muster/internal/testkit/pgtest"
)

// Past one machine: two servers on one PostgreSQL database serve agents
// together, half the agents on each. The backend takes one run at a time,
// and that holds across both servers (each run takes a lock directory that
// a second, overlapping run would find taken). "Run now" asked of one
// server reaches an agent whose long poll another server holds, through
// LISTEN/NOTIFY: the agents' slots are an hour apart and they are told to
// come back no sooner than minutes later, so only the signal can make the
// agent run again in time.
func TestPullServersSharePostgres(t *testing.T) {
	db := pgtest.Schema(t, "")
	work := t.TempDir()
	logFile, lock, overlap := filepath.Join(work, "runs.log"), filepath.Join(work, "lock"), filepath.Join(work, "overlap")
	dir := localProject(t, 1)
	cfg := fmt.Sprintf(`interval: 1h
floor: 1h
ceiling: 1h
retry_after: {min: 1s, max: 2s}
backends:
  - {name: puppet, max_running: 1}
runs:
  - command: 'mkdir %[1]s 2>/dev/null || { echo "$MUSTER_NODE" >> %[2]s; exit 99; }; echo "run $MUSTER_NODE $MUSTER_BACKEND" >> %[3]s; sleep 1; rmdir %[1]s'
`, lock, overlap, logFile)
	if err := os.WriteFile(filepath.Join(dir, "pull.yaml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("MUSTER_SECRET_KEY", strings.Repeat("cd", 32))
	data := t.TempDir() // shared: the CA and the admin token, made by the first server
	a, addrA, fp := agentsIn(t, dir, data, "--database", db)
	b, addrB, fpB := agentsIn(t, dir, data, "--database", db)
	if fp != fpB {
		t.Fatalf("the servers use different CAs: %s and %s", fp, fpB)
	}
	tok, err := a.client().CreateEnrollToken(context.Background(), api.EnrollTokenRequest{Name: "pg", Uses: 4, Certnames: "*.pg.test"})
	if err != nil {
		t.Fatal(err)
	}
	names := []string{"n1.pg.test", "n2.pg.test", "n3.pg.test", "n4.pg.test"}
	for i, name := range names {
		addr := addrA
		if i >= 2 {
			addr = addrB
		}
		startAgent(t, "--server", addr, "--data-dir", t.TempDir(), "--certname", name, "--enroll-token", tok.Secret, "--ca-fingerprint", fp)
	}
	ran := func(name string) int {
		b, _ := os.ReadFile(logFile)
		return strings.Count(string(b), "run "+name+" puppet\n")
	}
	for _, name := range names {
		eventually(t, name+"'s first run", func() bool { return ran(name) == 1 })
	}
	// Each server handed out runs: the agents were split between them.
	for _, s := range []*serverProc{a, b} {
		if !strings.Contains(s.Log(), "pull run handed out") {
			t.Errorf("server %s handed out no run:\n%s", s.url, s.Log())
		}
	}

	// Asked through server A; n3's check-in is held by server B.
	if code, out, errOut := cliWith(t, a, "node", "run", "n3.pg.test"); code != 0 {
		t.Fatalf("node run: exit %d\n%s%s", code, out, errOut)
	}
	eventually(t, "n3 runs again when asked through the other server", func() bool { return ran("n3.pg.test") == 2 })
	if ran("n1.pg.test") != 1 || ran("n4.pg.test") != 1 {
		t.Errorf("nodes not asked ran again:\n%s", must(os.ReadFile(logFile)))
	}

	// A command job handed to the agents (--pull), through server B: every
	// node runs it, whichever server holds its check-in.
	pulled := filepath.Join(work, "pulled.log")
	code, out, errOut := cliWith(t, b, "job", "submit", "command", "echo \"pulled $MUSTER_NODE\" >> "+pulled, "-t", "*.pg.test", "--pull", "--watch")
	if code != 0 || !strings.Contains(out, "for the agents of 4 node(s)") {
		t.Fatalf("job submit --pull: exit %d\n%s%s", code, out, errOut)
	}
	for _, name := range names {
		if got := strings.Count(must(os.ReadFile(pulled)), "pulled "+name+"\n"); got != 1 {
			t.Errorf("%s ran the pulled command %d times, want once", name, got)
		}
	}
	for _, bad := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"-t", "nothing*.example.com", "--pull"}, 2, "no signed node matches"},
		{[]string{"-t", "*.pg.test", "--pull", "--run-as", "root"}, 2, "--run-as"},
	} {
		code, out, errOut := cliWith(t, b, append([]string{"job", "submit", "command", "true"}, bad.args...)...)
		if code != bad.code || !strings.Contains(errOut, bad.want) {
			t.Errorf("job submit %v: exit %d, want %d with %q\n%s%s", bad.args, code, bad.code, bad.want, out, errOut)
		}
	}
	if b, err := os.ReadFile(overlap); err == nil {
		t.Errorf("runs overlapped on a backend that takes one at a time (across servers): %s", b)
	}
}

func must(b []byte, _ error) string { return string(b) }
