package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/muster-run/muster/internal/checkin"
)

// errRecheck says a held check-in was cut short by a watched file's
// change: check in again at once.
var errRecheck = errors.New("a watched file changed during the check-in")

// checkIn asks the server whether to run now, holding the request open up
// to Wait, and carries the watched files that changed.
func (a *Agent) checkIn(ctx context.Context) (checkin.CheckInResponse, error) {
	a.mu.Lock()
	changed := a.changed
	a.changed = nil
	lastRun := a.lastRun
	a.mu.Unlock()
	slices.Sort(changed)
	changed = slices.Compact(changed)
	req := checkin.CheckInRequest{Version: checkin.Version, Wait: a.cfg.Wait, Changed: changed, LastRun: lastRun}
	cctx, cancel := context.WithTimeout(ctx, a.cfg.Wait+30*time.Second)
	defer cancel()
	// A watched file that changes while the server holds this check-in
	// cuts it short: the agent checks in again at once, with the change.
	woke, stop, done := make(chan struct{}), make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		select {
		case <-a.wake:
			close(woke)
			cancel()
		case <-stop:
		}
	}()
	var resp checkin.CheckInResponse
	err := a.currentClient().post(cctx, checkin.PathCheckIn, req, &resp)
	close(stop)
	<-done
	if err != nil {
		// The changes are still to be told.
		a.mu.Lock()
		a.changed = append(changed, a.changed...)
		a.mu.Unlock()
		select {
		case <-woke:
			return resp, errRecheck
		default:
		}
		return resp, err
	}
	a.mu.Lock()
	a.lastContact = a.now()
	a.mu.Unlock()
	return resp, nil
}

// TailBuffer keeps the first and the last bytes of a stream up to a
// limit, so a report stays bounded however much a run prints.
type TailBuffer struct {
	mu    sync.Mutex
	head  []byte
	tail  []byte
	limit int
	cut   int64 // bytes dropped between head and tail
}

// NewTailBuffer keeps at most limit bytes: half from the start, half from
// the end.
func NewTailBuffer(limit int) *TailBuffer { return &TailBuffer{limit: limit} }

func (b *TailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := len(p)
	half := b.limit / 2
	if room := half - len(b.head); room > 0 && b.cut == 0 && len(b.tail) == 0 {
		k := min(room, len(p))
		b.head = append(b.head, p[:k]...)
		p = p[k:]
	}
	b.tail = append(b.tail, p...)
	if over := len(b.tail) - (b.limit - half); over > 0 {
		b.cut += int64(over)
		b.tail = append(b.tail[:0], b.tail[over:]...)
	}
	return n, nil
}

// String is what was kept, with a note where bytes were dropped.
func (b *TailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cut == 0 {
		return string(b.head) + string(b.tail)
	}
	return fmt.Sprintf("%s\n[... %d bytes not kept ...]\n%s", b.head, b.cut, b.tail)
}

// execute runs one run handed out by the server, spools its report, and
// sends it.
func (a *Agent) execute(ctx context.Context, run checkin.Run) {
	a.mu.Lock()
	r := run
	a.lastCommand = &r
	a.mu.Unlock()
	a.log.Info("running", "run", run.RunID, "attempt", run.Attempt, "backend", run.Backend)
	rctx := ctx
	if run.Timeout > 0 {
		var cancel context.CancelFunc
		rctx, cancel = context.WithTimeout(ctx, run.Timeout)
		defer cancel()
	}
	stdout, stderr := NewTailBuffer(checkin.MaxOutput), NewTailBuffer(checkin.MaxOutput)
	start := a.now()
	marker := a.markRunning(run, start)
	code, err := a.cfg.Exec(rctx, run, stdout, stderr)
	rep := checkin.Report{Version: checkin.Version, RunID: run.RunID, Attempt: run.Attempt, ExitCode: code,
		Stdout: stdout.String(), Stderr: stderr.String(), Duration: a.now().Sub(start), Started: start}
	switch {
	case err != nil:
		rep.ExitCode, rep.Error = -1, err.Error()
	case ctx.Err() != nil:
		rep.ExitCode, rep.Error = -1, "the agent stopped (SIGTERM) while the run ran"
	case rctx.Err() != nil:
		rep.ExitCode, rep.Error = -1, fmt.Sprintf("the run exceeded its timeout of %s", run.Timeout)
	}
	rep.ExitCode = max(-1, min(rep.ExitCode, 255))
	a.mu.Lock()
	rep.Changed = a.changed
	a.lastRun = a.now()
	a.mu.Unlock()
	if err := a.spool(rep); err != nil {
		a.log.Error("cannot spool the report; sending it directly", "run", run.RunID, "err", err)
		var resp checkin.ReportResponse
		if err := a.currentClient().post(context.WithoutCancel(ctx), checkin.PathReport, rep, &resp); err != nil {
			a.log.Error("the report is lost: neither spooled nor sent", "run", run.RunID, "err", err)
		}
	}
	os.Remove(marker) // the report stands in for it now
	if rep.Error != "" {
		a.log.Warn("run failed to run", "run", run.RunID, "err", rep.Error)
	}
	a.log.Info("run ended", "run", run.RunID, "exit_code", rep.ExitCode, "duration", rep.Duration.Round(time.Millisecond))
	a.flushSpool(context.WithoutCancel(ctx))
}

// spoolName is a report's file in the spool.
func spoolName(runID int64, attempt int) string {
	return fmt.Sprintf("report-%d-%d.json", runID, attempt)
}

// spool writes a report to the spool before it is sent: written to a
// temporary file, synced and renamed into place, so a crash leaves the
// whole report or none.
func (a *Agent) spool(rep checkin.Report) error {
	b, err := json.Marshal(rep)
	if err != nil {
		return err
	}
	dir := a.path("spool")
	f, err := os.CreateTemp(dir, ".report-*")
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		os.Remove(f.Name())
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(f.Name())
		return err
	}
	if err := f.Close(); err != nil {
		os.Remove(f.Name())
		return err
	}
	return os.Rename(f.Name(), filepath.Join(dir, spoolName(rep.RunID, rep.Attempt)))
}

// Spooled lists the reports waiting in the spool, oldest run first.
func (a *Agent) Spooled() []string {
	names, _ := filepath.Glob(filepath.Join(a.path("spool"), "report-*.json"))
	sort.Strings(names)
	return names
}

// flushSpool sends the spooled reports, oldest first, removing each once
// the server has it (or has taken the run back: a stale report). It stops
// at the first one that cannot be sent.
func (a *Agent) flushSpool(ctx context.Context) {
	for _, name := range a.Spooled() {
		b, err := os.ReadFile(name)
		if err != nil {
			continue
		}
		var rep checkin.Report
		if err := json.Unmarshal(b, &rep); err != nil {
			a.log.Error("dropping an unreadable spooled report", "file", name, "err", err)
			os.Remove(name)
			continue
		}
		var resp checkin.ReportResponse
		sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err = a.currentClient().post(sctx, checkin.PathReport, rep, &resp)
		cancel()
		if err != nil {
			if !refused(err) {
				a.log.Warn("report not sent; it stays in the spool", "run", rep.RunID, "err", err)
				return
			}
			a.log.Error("the server refused a report; dropping it", "run", rep.RunID, "err", err)
		} else if resp.State == "stale" {
			a.log.Warn("the server had taken the run back; its report is dropped", "run", rep.RunID, "attempt", rep.Attempt)
		}
		os.Remove(name)
	}
}

// flushOnExit sends what it can of the spool within a few seconds.
func (a *Agent) flushOnExit() {
	if len(a.Spooled()) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	a.flushSpool(ctx)
	if n := len(a.Spooled()); n > 0 {
		a.log.Info("reports left in the spool for the next start", "reports", n)
	}
}

// maybeRunOffline runs the last command the server handed out when the
// server has been unreachable for OfflineRunAfter and the node's offline
// slot is due, so that its state is still enforced. Such a run has no
// queue run to report to; its output is logged.
func (a *Agent) maybeRunOffline(ctx context.Context) {
	if a.cfg.OfflineRunAfter <= 0 {
		return
	}
	a.mu.Lock()
	last, contact, lastRun := a.lastCommand, a.lastContact, a.lastRun
	a.mu.Unlock()
	now := a.now()
	if last == nil || contact.IsZero() || now.Sub(contact) < a.cfg.OfflineRunAfter || now.Sub(lastRun) < a.cfg.Interval {
		return
	}
	a.log.Warn("the server has been unreachable since "+contact.Format(time.RFC3339)+"; running on this node's own slot", "command", last.Command)
	run := *last
	run.RunID, run.Attempt = 0, 0
	stdout, stderr := NewTailBuffer(64<<10), NewTailBuffer(64<<10)
	code, err := a.cfg.Exec(ctx, run, stdout, stderr)
	a.mu.Lock()
	a.lastRun = a.now()
	a.mu.Unlock()
	a.log.Info("offline run ended", "exit_code", code, "err", err, "stdout", stdout.String(), "stderr", stderr.String())
}

// runningName is the spool's marker of a run in progress.
func runningName(runID int64, attempt int) string {
	return fmt.Sprintf("running-%d-%d.json", runID, attempt)
}

// markRunning notes a run in progress in the spool, so that an agent
// killed during it (its work dies with it) reports it at its next start
// instead of leaving it to the lease's expiry.
func (a *Agent) markRunning(run checkin.Run, start time.Time) string {
	path := filepath.Join(a.path("spool"), runningName(run.RunID, run.Attempt))
	b, _ := json.Marshal(checkin.Report{Version: checkin.Version, RunID: run.RunID, Attempt: run.Attempt, Started: start})
	if err := os.WriteFile(path, b, 0o600); err != nil {
		a.log.Warn("cannot mark the run in the spool", "run", run.RunID, "err", err)
	}
	return path
}

// reportInterrupted turns the markers of runs that a previous agent did
// not finish (it was killed, the machine rebooted) into failed reports.
func (a *Agent) reportInterrupted() {
	names, _ := filepath.Glob(filepath.Join(a.path("spool"), "running-*.json"))
	for _, name := range names {
		b, err := os.ReadFile(name)
		var rep checkin.Report
		if err == nil {
			err = json.Unmarshal(b, &rep)
		}
		if err != nil || rep.RunID <= 0 {
			os.Remove(name)
			continue
		}
		if _, err := os.Stat(filepath.Join(a.path("spool"), spoolName(rep.RunID, rep.Attempt))); err == nil {
			os.Remove(name) // the run's own report made it to the spool
			continue
		}
		rep.ExitCode = -1
		rep.Error = "the agent stopped during the run (killed, or the machine restarted); its work was stopped with it"
		if err := a.spool(rep); err != nil {
			a.log.Error("cannot spool the report of an interrupted run", "run", rep.RunID, "err", err)
			continue
		}
		os.Remove(name)
		a.log.Warn("a run was interrupted by the agent's last stop; reporting it as failed", "run", rep.RunID, "attempt", rep.Attempt)
	}
}
