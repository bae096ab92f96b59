package api

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/muster-run/muster"
)

// TestEventsStreamOutput: live output a server appends for a running run
// reaches a watcher as "output" events, in order, with the run's target,
// and an event stream that starts later replays what is stored.
func TestEventsStreamOutput(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.EventInterval = 10 * time.Millisecond })
	id := e.submit(commandJob("web1", "echo hi")).Job.ID
	runs, err := e.store.ClaimRuns(e.ctx, muster.ClaimParams{Server: "s", Limit: 10, LeaseTTL: time.Minute})
	if err != nil || len(runs) != 1 {
		t.Fatalf("claim: %v %v", runs, err)
	}
	r := runs[0]
	appendOut := func(stream, data string) {
		t.Helper()
		err := e.store.AppendOutput(e.ctx, []muster.OutputChunk{{RunID: r.ID, Attempt: r.Attempt, Stream: stream, Data: []byte(data)}})
		if err != nil {
			t.Fatal(err)
		}
	}
	appendOut(muster.OutputStdout, "one\n")

	ctx, cancel := context.WithTimeout(e.ctx, 60*time.Second) // a safety net, not an assertion
	defer cancel()
	var got []string
	done := make(chan error, 1)
	go func() {
		done <- e.client(muster.RoleViewer).Events(ctx, id, func(ev Event) error {
			if ev.Type != EventOutput {
				return nil
			}
			o := ev.Output
			if o.RunID != r.ID || o.Attempt != r.Attempt || o.Target != "web1" {
				t.Errorf("output event %+v, want run %d attempt %d on web1", o, r.ID, r.Attempt)
			}
			got = append(got, o.Stream+":"+o.Data)
			switch o.Data {
			case "one\n": // replayed: append more while the stream is open
				appendOut(muster.OutputStderr, "two\n")
				appendOut(muster.OutputStdout, "three\n")
			case "three\n":
				res, err := e.store.CompleteRuns(e.ctx, []muster.CompleteParams{completion(r, muster.OutcomeSucceeded)})
				if err != nil || res[0].Err != nil {
					t.Errorf("complete: %v %v", err, res)
				}
			}
			return nil
		})
	}()
	if err := <-done; err != nil {
		t.Fatalf("Events: %v", err)
	}
	if want := "stdout:one\n|stderr:two\n|stdout:three\n"; strings.Join(got, "|") != want {
		t.Errorf("output events %q, want %q", strings.Join(got, "|"), want)
	}
}
