package api

import (
	"context"
	"testing"
	"time"

	"github.com/muster-run/muster"
	"github.com/muster-run/muster/internal/events"
)

// With an event hub, a stream reads the store when told: with a fallback
// interval of an hour, the job's end still arrives as soon as it is
// published.
func TestEventsFollowTheHub(t *testing.T) {
	hub := events.New()
	e := newEnv(t, func(c *Config) { c.Events, c.EventInterval = hub, time.Hour })
	sub := e.submit(commandJob("web1", "echo hi"))
	ctx, cancel := context.WithTimeout(e.ctx, 60*time.Second) // a safety net, not an assertion
	defer cancel()
	started := make(chan struct{})
	done := make(chan error, 1)
	var last Event
	go func() {
		first := true
		done <- e.client(muster.RoleViewer).Events(ctx, sub.Job.ID, func(ev Event) error {
			last = ev
			if first && ev.Type == EventJob {
				first = false
				close(started)
			}
			return nil
		})
	}()
	select {
	case <-started:
	case err := <-done:
		t.Fatalf("stream ended before it started: %v", err)
	}
	for hub.Subscribers() == 0 {
		time.Sleep(time.Millisecond) // the stream subscribes right after its first event
	}
	runs, err := e.store.ClaimRuns(e.ctx, muster.ClaimParams{Server: "s", Limit: 1, LeaseTTL: time.Minute})
	if err != nil || len(runs) != 1 {
		t.Fatalf("claim: %v %v", runs, err)
	}
	if _, err := e.store.CompleteRuns(e.ctx, []muster.CompleteParams{completion(runs[0], muster.OutcomeSucceeded)}); err != nil {
		t.Fatal(err)
	}
	hub.Publish(sub.Job.ID)
	if err := <-done; err != nil {
		t.Fatalf("Events: %v", err)
	}
	if last.Type != EventEnd || last.Job.State != muster.JobSucceeded {
		t.Fatalf("last event %+v", last)
	}
	// The handler closes its subscription as it returns, just after the
	// client has read the end.
	for hub.Subscribers() != 0 {
		time.Sleep(time.Millisecond)
	}
}
