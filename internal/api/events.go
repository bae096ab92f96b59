package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/muster-run/muster"
)

// keepAlive is how often an idle event stream sends a comment, so that
// proxies keep the connection open.
const keepAlive = 15 * time.Second

// outputPage is how many output chunks one store read returns.
const outputPage = 1000

// activeStates are the run states that may still change.
var activeStates = []muster.RunState{muster.RunScheduled, muster.RunPending, muster.RunRunning, muster.RunRetrying}

// runKey is what a run event is about: a change of state or attempt.
type runKey struct {
	state   muster.RunState
	attempt int
}

// handleEvents streams a job's progress as server-sent events: a "run"
// event whenever one of its runs changes state (with the result once
// final), "output" events with the new lines of running runs, a "job"
// summary with counts after each batch of changes, and a final "end"
// event once the job has finished. It reads the store when the event hub
// says the job changed, and every EventInterval besides.
func (s *Server) handleEvents(w http.ResponseWriter, r *http.Request, _ muster.Token) error {
	id, err := jobID(r)
	if err != nil {
		return err
	}
	ctx := r.Context()
	j, err := s.getJob(ctx, id)
	if err != nil {
		return err
	}
	rc := http.NewResponseController(w)
	_ = rc.SetWriteDeadline(time.Time{}) // a stream outlives the server's write timeout
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return nil
	}

	seq := 0
	send := func(ev Event) error {
		ev.Time = s.now().UTC()
		b, err := json.Marshal(ev)
		if err != nil {
			return err
		}
		seq++
		if _, err := fmt.Fprintf(w, "id: %d\nevent: %s\ndata: %s\n\n", seq, ev.Type, b); err != nil {
			return err
		}
		return nil
	}
	flush := func() error { return rc.Flush() }

	specs := specCache{}
	known := map[int64]runKey{}
	// The first snapshot: every run of a one-shot job; the waiting and
	// running ones of a repeating job (its history can be long).
	f := muster.RunFilter{JobID: id, States: activeStates, Limit: maxRunsPage}
	if j.Every == 0 && !j.Continuous {
		f = muster.RunFilter{JobID: id, Limit: min(max(1000, 2*len(j.Targets)), maxRunsPage)}
	}
	first := true
	var lastOut int64 // the last output chunk sent
	ticker := time.NewTicker(s.cfg.EventInterval)
	defer ticker.Stop()
	var notified <-chan struct{} // nil (never ready) without a hub
	if s.cfg.Events != nil {
		sub := s.cfg.Events.Subscribe(id)
		defer sub.Close()
		notified = sub.C
	}
	lastRead := s.now()
	idle := time.Duration(0)
	for {
		runs, err := s.store.ListRuns(ctx, f)
		if err != nil {
			return err
		}
		f = muster.RunFilter{JobID: id, States: activeStates, Limit: maxRunsPage}
		changed := first
		seen := map[int64]bool{}
		for _, run := range runs {
			seen[run.ID] = true
			k := runKey{run.State, run.Attempt}
			if old, ok := known[run.ID]; ok && old == k {
				continue
			}
			if !run.State.Final() {
				known[run.ID] = k
			}
			changed = true
			v := runView(run, specs.get(run.Spec))
			if err := send(Event{Type: EventRun, Run: &v}); err != nil {
				return err
			}
		}
		// Runs that left the active states have become final.
		for rid := range known {
			if seen[rid] {
				continue
			}
			run, err := s.store.GetRun(ctx, rid)
			if err != nil {
				return err
			}
			delete(known, rid)
			changed = true
			v := runView(run, specs.get(run.Spec))
			if err := send(Event{Type: EventRun, Run: &v}); err != nil {
				return err
			}
		}
		first = false
		before := lastOut
		if lastOut, err = s.sendOutput(ctx, id, lastOut, send); err != nil {
			return err
		}
		if !changed && lastOut != before {
			if err := flush(); err != nil {
				return err
			}
			idle = 0
		}
		if changed {
			if j, err = s.store.GetJob(ctx, id); err != nil {
				return err
			}
			v := jobView(j, false)
			if jobFinished(j) && len(known) == 0 {
				if err := send(Event{Type: EventEnd, Job: &v}); err != nil {
					return err
				}
				return flush()
			}
			if err := send(Event{Type: EventJob, Job: &v}); err != nil {
				return err
			}
			if err := flush(); err != nil {
				return err
			}
			idle = 0
		}
		select {
		case <-ctx.Done():
			return nil
		case <-s.closed:
			return nil
		case <-ticker.C:
		case <-notified:
		}
		now := s.now()
		idle += now.Sub(lastRead)
		lastRead = now
		if idle >= keepAlive {
			idle = 0
			if _, err := fmt.Fprint(w, ": keep-alive\n\n"); err != nil {
				return err
			}
			if err := flush(); err != nil {
				return err
			}
		}
	}
}

// sendOutput sends the job's output chunks stored after the one with id
// after, as "output" events, and returns the last id sent.
func (s *Server) sendOutput(ctx context.Context, job, after int64, send func(Event) error) (int64, error) {
	for {
		chunks, err := s.store.ListOutput(ctx, muster.OutputFilter{JobID: job, AfterID: after, Limit: outputPage})
		if err != nil {
			return after, err
		}
		for _, c := range chunks {
			after = c.ID
			err := send(Event{Type: EventOutput, Output: &OutputView{RunID: c.RunID, Attempt: c.Attempt,
				Target: c.Node, Stream: c.Stream, Data: string(c.Data)}})
			if err != nil {
				return after, err
			}
		}
		if len(chunks) < outputPage {
			return after, nil
		}
	}
}
