package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A plan queued on the server runs through the same engine as the CLI:
// its messages and step lines reach 'job watch', and its steps honour the
// job's concurrency (they used to run with the CLI's unset flag: 100).
func TestServerPlanJob(t *testing.T) {
	dir := localProject(t, 4)
	work := t.TempDir()
	mod := filepath.Join(dir, "modules", "m", "plans")
	if err := os.MkdirAll(mod, 0o755); err != nil {
		t.Fatal(err)
	}
	plan := fmt.Sprintf(`parameters:
  targets: {type: TargetSpec}
steps:
  - message: "hello from the plan on ${targets}"
  - command: 'mkdir %[1]s/lock 2>/dev/null || echo OVERLAP >> %[1]s/log; sleep 0.3; rmdir %[1]s/lock; echo ran >> %[1]s/log'
    targets: nodes
`, work)
	if err := os.WriteFile(filepath.Join(mod, "fan.yaml"), []byte(plan), 0o644); err != nil {
		t.Fatal(err)
	}
	srv := startServer(t, dir, t.TempDir())
	srv.env(t)
	code, out, errOut := cli(t, "job", "submit", "plan", "m::fan", "-t", "n01", "--concurrency", "1", "--watch", "--project", dir)
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	for _, want := range []string{"hello from the plan on n01", "Starting: command", "Finished: plan m::fan"} {
		if !strings.Contains(out, want) {
			t.Errorf("job watch lacks %q:\n%s", want, out)
		}
	}
	log, err := os.ReadFile(filepath.Join(work, "log"))
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(log), "ran"); n != 4 || strings.Contains(string(log), "OVERLAP") {
		t.Errorf("with --concurrency 1 the step must run on the 4 nodes one at a time; log:\n%s", log)
	}
}
