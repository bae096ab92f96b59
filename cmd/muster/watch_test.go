package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/muster-run/muster"
	"github.com/muster-run/muster/internal/api"
)

// 'muster job watch' shows output while the runs still run: each node
// prints a line, then waits for a gate that the test opens only once the
// event stream has carried both first lines; the watch prints every line
// once, prefixed with its target, including a last line without a newline.
func TestServerWatchStreamsLiveOutput(t *testing.T) {
	dir := localProject(t, 2)
	srv := startServer(t, dir, t.TempDir())
	srv.env(t)
	c := srv.client()
	gate := filepath.Join(t.TempDir(), "gate")
	cmd := fmt.Sprintf(`echo "first $MUSTER_NODE"; echo "oops $MUSTER_NODE" >&2
while [ ! -e %s ]; do sleep 0.05; done
echo "second $MUSTER_NODE"; printf "tail $MUSTER_NODE"`, gate)
	job := submit(t, c, api.SubmitRequest{Kind: muster.JobCommand, Targets: api.Targets{Spec: "nodes"},
		Spec: muster.JobSpec{Command: cmd}})

	type watched struct {
		code     int
		out, err string
	}
	cliDone := make(chan watched, 1)
	go func() {
		code, out, errOut := cli(t, "job", "watch", fmt.Sprint(job.Job.ID))
		cliDone <- watched{code, out, errOut}
	}()

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute) // a hang guard
	defer cancel()
	seen := map[string]bool{}
	err := c.Events(ctx, job.Job.ID, func(ev api.Event) error {
		switch {
		case ev.Type == api.EventRun && ev.Run.State.Final() && !seen["gate"]:
			t.Errorf("run on %s ended before the gate opened", ev.Run.Target)
		case ev.Type == api.EventOutput:
			seen[ev.Output.Stream+" "+ev.Output.Data] = true
			if seen["stdout first n01\n"] && seen["stdout first n02\n"] && !seen["gate"] {
				seen["gate"] = true
				return os.WriteFile(gate, nil, 0o644)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("events: %v (seen %v)", err, seen)
	}
	if !seen["stderr oops n01\n"] {
		t.Errorf("no live stderr line; seen %v", seen)
	}
	w := <-cliDone
	if w.code != 0 || !strings.Contains(w.out, "Successful on 2 targets") {
		t.Fatalf("job watch: exit %d\n%s\n%s", w.code, w.out, w.err)
	}
	if want := fmt.Sprintf("Job %d succeeded\n", job.Job.ID); !strings.HasSuffix(w.out, want) {
		t.Errorf("job watch does not end with %q:\n%s", want, w.out)
	}
	if strings.Contains(w.out, "Finished on n01:\n") {
		t.Errorf("job watch printed an empty 'Finished on n01:' section after live output:\n%s", w.out)
	}
	for _, n := range []string{"n01", "n02"} {
		for _, line := range []string{"out: first ", "err: oops ", "out: second ", "out: tail "} {
			want := "[" + n + "] " + line + n + "\n"
			if k := strings.Count(w.out, want); k != 1 {
				t.Errorf("job watch printed %q %d times, want once:\n%s", want, k, w.out)
			}
		}
	}

	// --stream=false prints each target's output under its result.
	code, out, errOut := cli(t, "job", "watch", fmt.Sprint(job.Job.ID), "--stream=false")
	if code != 0 || strings.Contains(out, "] out:") || !strings.Contains(out, "second n01") {
		t.Errorf("job watch --stream=false: exit %d\n%s\n%s", code, out, errOut)
	}
}
