package storetest

// cases_output.go: the live output of running attempts (AppendOutput,
// ListOutput), and its deletion when an attempt ends.

import (
	"bytes"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/muster-run/muster"
)

// chunk is a chunk of r's current attempt.
func chunk(r muster.Run, stream, data string) muster.OutputChunk {
	return muster.OutputChunk{RunID: r.ID, Attempt: r.Attempt, Stream: stream, Data: []byte(data)}
}

func (e *env) appendOutput(chunks ...muster.OutputChunk) {
	e.t.Helper()
	if err := e.s.AppendOutput(e.ctx, chunks); err != nil {
		e.t.Fatalf("AppendOutput: %v", err)
	}
}

func (e *env) output(f muster.OutputFilter) []muster.OutputChunk {
	e.t.Helper()
	cs, err := e.s.ListOutput(e.ctx, f)
	if err != nil {
		e.t.Fatalf("ListOutput(%+v): %v", f, err)
	}
	return cs
}

// jobOutput lists all of a job's chunks (up to the default limit).
func (e *env) jobOutput(job int64) []muster.OutputChunk {
	e.t.Helper()
	return e.output(muster.OutputFilter{JobID: job})
}

// datas is the chunks' data, as strings.
func datas(cs []muster.OutputChunk) []string {
	out := []string{}
	for _, c := range cs {
		out = append(out, string(c.Data))
	}
	return out
}

// wantData checks the chunks' data, in order, and that their ids increase.
func (e *env) wantData(what string, cs []muster.OutputChunk, want ...string) {
	e.t.Helper()
	if want == nil {
		want = []string{}
	}
	if got := datas(cs); !slices.Equal(got, want) {
		e.t.Fatalf("%s: chunks %q, want %q", what, got, want)
	}
	for i := 1; i < len(cs); i++ {
		if cs[i].ID <= cs[i-1].ID {
			e.t.Fatalf("%s: chunk ids not increasing: %d after %d", what, cs[i].ID, cs[i-1].ID)
		}
	}
}

// testOutputAppendList: chunks come back in append order, across batches
// and runs, with their run, attempt, node, stream and time; a job sees
// only the chunks of the runs serving it.
func testOutputAppendList(e *env) {
	job := e.submit(muster.Job{Targets: []string{"a", "b"}})
	other := e.submit(muster.Job{Targets: []string{"c"}, Spec: spec("other")})
	rs := e.claim("s", 10, 0)
	e.wantNodes(rs, "a", "b", "c")
	a, b, c := rs[0], rs[1], rs[2]
	if err := e.s.AppendOutput(e.ctx, nil); err != nil {
		e.t.Fatalf("AppendOutput(nothing) = %v", err)
	}
	t0 := e.clk.Now()
	e.appendOutput(chunk(a, muster.OutputStdout, "a1\n"), chunk(b, muster.OutputStderr, "b1\n"),
		chunk(c, muster.OutputStdout, "c1\n"), chunk(a, muster.OutputStderr, "a2\n"))
	e.clk.Advance(time.Second)
	e.appendOutput(chunk(b, muster.OutputStdout, "b2\nb3\n"))

	got := e.jobOutput(job.Job.ID)
	want := []struct {
		run    muster.Run
		stream string
		data   string
		at     time.Time
	}{
		{a, muster.OutputStdout, "a1\n", t0},
		{b, muster.OutputStderr, "b1\n", t0},
		{a, muster.OutputStderr, "a2\n", t0},
		{b, muster.OutputStdout, "b2\nb3\n", t0.Add(time.Second)},
	}
	if len(got) != len(want) {
		e.t.Fatalf("ListOutput(job) = %q, want %d chunks", datas(got), len(want))
	}
	for i, w := range want {
		g := got[i]
		if g.RunID != w.run.ID || g.Attempt != 1 || g.Node != w.run.Node || g.Stream != w.stream ||
			string(g.Data) != w.data || !g.At.Equal(w.at) || g.ID <= 0 || i > 0 && g.ID <= got[i-1].ID {
			e.t.Errorf("chunk %d: %+v; want run %d (node %s) attempt 1 %s %q at %v, with an increasing id",
				i, g, w.run.ID, w.run.Node, w.stream, w.data, w.at)
		}
	}
	o := e.jobOutput(other.Job.ID)
	e.wantData("the other job's output", o, "c1\n")
	if o[0].ID <= got[1].ID || o[0].ID >= got[2].ID || o[0].Node != "c" {
		e.t.Errorf("the other job's chunk: %+v; want an id between %d and %d (append order), node c", o[0], got[1].ID, got[2].ID)
	}
	if cs := e.jobOutput(other.Job.ID + 1); len(cs) != 0 {
		e.t.Errorf("ListOutput(no such job) = %q", datas(cs))
	}
}

// testOutputPaging: AfterID and Limit page through a job's chunks, and
// Limit 0 means 1000.
func testOutputPaging(e *env) {
	job := e.submit(muster.Job{Targets: []string{"a"}})
	a := e.claim("s", 1, 0)[0]
	var batch []muster.OutputChunk
	var lines []string
	for i := range 1001 {
		lines = append(lines, fmt.Sprintf("line %d\n", i))
		batch = append(batch, chunk(a, muster.OutputStdout, lines[i]))
	}
	e.appendOutput(batch...)
	all := e.jobOutput(job.Job.ID)
	e.wantData("default limit", all, lines[:1000]...)
	id := func(i int) int64 { return all[i].ID }
	for _, tc := range []struct {
		name string
		f    muster.OutputFilter
		want []string
	}{
		{"limit 2", muster.OutputFilter{Limit: 2}, lines[:2]},
		{"after the first", muster.OutputFilter{AfterID: id(0), Limit: 3}, lines[1:4]},
		{"after the 500th", muster.OutputFilter{AfterID: id(499), Limit: 2}, lines[500:502]},
		{"after the 1000th", muster.OutputFilter{AfterID: id(999)}, lines[1000:]},
		{"after the 999th, limit 5", muster.OutputFilter{AfterID: id(998), Limit: 5}, lines[999:]},
		{"negative limit", muster.OutputFilter{AfterID: id(997), Limit: -1}, lines[998:]},
	} {
		tc.f.JobID = job.Job.ID
		e.wantData(tc.name, e.output(tc.f), tc.want...)
	}
	last := e.output(muster.OutputFilter{JobID: job.Job.ID, AfterID: id(999)})[0].ID
	e.wantData("after the last", e.output(muster.OutputFilter{JobID: job.Job.ID, AfterID: last}))
	// A later append comes after the last.
	e.appendOutput(chunk(a, muster.OutputStderr, "more\n"))
	e.wantData("after the last, once more came", e.output(muster.OutputFilter{JobID: job.Job.ID, AfterID: last}), "more\n")
}

// testOutputDropped: a chunk whose run is not running that attempt is
// dropped without an error, alone or among chunks that are stored.
func testOutputDropped(e *env) {
	job := e.submit(muster.Job{Targets: []string{"a", "b", "c"}, MaxRetries: 1})
	rs := e.claim("s", 2, 0)
	e.wantNodes(rs, "a", "b") // c waits
	a, b := rs[0], rs[1]
	e.complete(b, muster.OutcomeSucceeded)
	waiting := e.run(job.Runs["c"])
	at := func(r muster.Run, attempt int) muster.OutputChunk {
		c := chunk(r, muster.OutputStdout, fmt.Sprintf("%s attempt %d\n", r.Node, attempt))
		c.Attempt = attempt
		return c
	}
	for _, tc := range []struct {
		name    string
		c       muster.OutputChunk
		dropped bool
	}{
		{"running attempt", at(a, 1), false},
		{"attempt 0 of a running run", at(a, 0), true},
		{"a later attempt of a running run", at(a, 2), true},
		{"a succeeded run", at(b, 1), true},
		{"a waiting run", at(waiting, 0), true},
		{"a waiting run's next attempt", at(waiting, 1), true},
		{"an unknown run", muster.OutputChunk{RunID: 1 << 40, Attempt: 1, Stream: muster.OutputStdout, Data: []byte("?\n")}, true},
	} {
		before := len(e.jobOutput(job.Job.ID))
		if err := e.s.AppendOutput(e.ctx, []muster.OutputChunk{tc.c}); err != nil {
			e.t.Fatalf("%s: AppendOutput = %v, want a silent drop", tc.name, err)
		}
		want := 1
		if tc.dropped {
			want = 0
		}
		if stored := len(e.jobOutput(job.Job.ID)) - before; stored != want {
			e.t.Errorf("%s: %d chunks stored, want %d", tc.name, stored, want)
		}
	}
	// In one batch, the stored ones keep their order.
	e.appendOutput(at(b, 1), at(a, 1), at(waiting, 1), at(a, 2), chunk(a, muster.OutputStderr, "last\n"))
	e.wantData("after the mixed batch", e.jobOutput(job.Job.ID), "a attempt 1\n", "a attempt 1\n", "last\n")
}

// testOutputDeleted: a run's chunks are deleted when its attempt ends, by
// every writer that ends attempts; other runs' chunks stay, a late chunk
// of the ended attempt is dropped, and a next attempt's chunks are stored
// with ids after every earlier one.
func testOutputDeleted(e *env) {
	for _, tc := range []struct {
		name string
		job  muster.Job
		// end ends the attempt a (claimed by s1; the bystander run is s2's).
		end   func(e *env, job muster.SubmitResult, a muster.Run)
		state muster.RunState // a's state once end returns
	}{
		{"CompleteRuns succeeded", muster.Job{}, func(e *env, _ muster.SubmitResult, a muster.Run) {
			res, err := e.s.CompleteRuns(e.ctx, []muster.CompleteParams{{RunID: a.ID, Server: "s1", Attempt: a.Attempt, Outcome: muster.OutcomeSucceeded}})
			if err != nil || res[0].Err != nil {
				e.t.Fatalf("CompleteRuns = %v, %v", res, err)
			}
		}, muster.RunSucceeded},
		{"CompleteRuns failed, to retry", muster.Job{MaxRetries: 1}, func(e *env, _ muster.SubmitResult, a muster.Run) {
			res, err := e.s.CompleteRuns(e.ctx, []muster.CompleteParams{{RunID: a.ID, Server: "s1", Attempt: a.Attempt, Outcome: muster.OutcomeFailed}})
			if err != nil || res[0].Err != nil {
				e.t.Fatalf("CompleteRuns = %v, %v", res, err)
			}
		}, muster.RunRetrying},
		{"CompleteRun failed", muster.Job{}, func(e *env, _ muster.SubmitResult, a muster.Run) {
			e.complete(a, muster.OutcomeFailed)
		}, muster.RunFailed},
		{"ReleaseRuns", muster.Job{}, func(e *env, _ muster.SubmitResult, a muster.Run) {
			if ids, err := e.s.ReleaseRuns(e.ctx, "s1", nil); err != nil || !slices.Equal(ids, []int64{a.ID}) {
				e.t.Fatalf("ReleaseRuns = %v, %v", ids, err)
			}
		}, muster.RunPending},
		{"RescueExpired, requeued", muster.Job{}, func(e *env, _ muster.SubmitResult, a muster.Run) {
			e.rescueOnly(a)
		}, muster.RunPending},
		{"RescueExpired, failed", muster.Job{OnLeaseExpiry: muster.LeaseFail}, func(e *env, _ muster.SubmitResult, a muster.Run) {
			e.rescueOnly(a)
		}, muster.RunFailed},
		{"CancelJob, then the stopped attempt's report", muster.Job{MaxRetries: 1}, func(e *env, job muster.SubmitResult, a muster.Run) {
			if got := e.cancel(job.Job.ID); got != (muster.CancelResult{Stopping: 1}) {
				e.t.Fatalf("CancelJob = %+v, want 1 stopping", got)
			}
			// The attempt still runs, while its server stops it: watchers
			// still see its output, and more of it.
			e.appendOutput(chunk(a, muster.OutputStderr, "stopping\n"))
			e.wantData("output of the run asked to stop", e.jobOutput(job.Job.ID), "a1\n", "a2\n", "stopping\n")
			if r := e.complete(a, muster.OutcomeFailed); r.State != muster.RunCancelled {
				e.t.Fatalf("the stopped attempt ended %s, want cancelled", r.State)
			}
		}, muster.RunCancelled},
		{"RescueExpired after CancelJob", muster.Job{}, func(e *env, job muster.SubmitResult, a muster.Run) {
			e.cancel(job.Job.ID)
			e.rescueOnly(a)
		}, muster.RunCancelled},
	} {
		e.t.Run(tc.name, func(t *testing.T) {
			e := e.fresh(t)
			j := tc.job
			j.Targets = []string{"a"}
			job := e.submit(j)
			bystander := e.submit(muster.Job{Targets: []string{"b"}, Spec: spec("bystander")})
			a := e.claim("s1", 1, 0)
			e.wantNodes(a, "a")
			b := e.claim("s2", 1, 0)
			e.wantNodes(b, "b")
			e.appendOutput(chunk(a[0], muster.OutputStdout, "a1\n"), chunk(b[0], muster.OutputStdout, "b1\n"),
				chunk(a[0], muster.OutputStderr, "a2\n"))
			before := e.jobOutput(bystander.Job.ID)
			last := e.jobOutput(job.Job.ID)[1].ID // a2, the newest chunk

			tc.end(e, job, a[0])
			if r := e.run(a[0].ID); r.State != tc.state {
				e.t.Fatalf("run a: %s, want %s", r.State, tc.state)
			}
			e.wantData("the ended attempt's output", e.jobOutput(job.Job.ID))
			if got := e.jobOutput(bystander.Job.ID); !slices.EqualFunc(got, before, chunkEqual) {
				e.t.Fatalf("the running bystander's output changed: %+v, was %+v", got, before)
			}
			e.appendOutput(chunk(a[0], muster.OutputStdout, "late\n"))
			e.wantData("a late chunk of the ended attempt", e.jobOutput(job.Job.ID))
			if tc.state.Final() {
				return
			}
			// The next attempt's output is stored, after all earlier ids.
			e.clk.Advance(time.Minute)
			e.heartbeat("s2")
			next := e.claim("s1", 1, 0)
			e.wantNodes(next, "a")
			e.appendOutput(chunk(next[0], muster.OutputStdout, "next\n"))
			got := e.jobOutput(job.Job.ID)
			e.wantData("the next attempt's output", got, "next\n")
			if got[0].Attempt != next[0].Attempt || got[0].ID <= last {
				e.t.Fatalf("the next attempt's chunk %+v; want attempt %d and an id after %d (ids never come back)", got[0], next[0].Attempt, last)
			}
		})
	}
}

func chunkEqual(a, b muster.OutputChunk) bool {
	return a.ID == b.ID && a.RunID == b.RunID && a.Attempt == b.Attempt && a.Node == b.Node && a.Stream == b.Stream &&
		bytes.Equal(a.Data, b.Data) && a.At.Equal(b.At)
}

func (e *env) heartbeat(server string) {
	e.t.Helper()
	if _, err := e.s.Heartbeat(e.ctx, muster.HeartbeatParams{Server: server, LeaseTTL: 30 * time.Second}); err != nil {
		e.t.Fatalf("Heartbeat(%s): %v", server, err)
	}
}

// rescueOnly lets r's lease (held by s1) expire while s2 keeps its own,
// and rescues r.
func (e *env) rescueOnly(r muster.Run) {
	e.t.Helper()
	e.clk.Advance(20 * time.Second)
	e.heartbeat("s2")
	e.clk.Advance(11 * time.Second)
	if ids, err := e.s.RescueExpired(e.ctx); err != nil || !slices.Equal(ids, []int64{r.ID}) {
		e.t.Fatalf("RescueExpired = %v, %v; want %d", ids, err, r.ID)
	}
}

// testOutputCancelWaiting: the waiting runs CancelJob ends drop their
// chunks too. No chunk can be stored for a waiting run, so one is put
// there through the adapter's DB().
func testOutputCancelWaiting(e *env) {
	h, ok := e.s.(interface{ DB() *sql.DB })
	if !ok {
		e.t.Fatal("the store has no DB() test hook")
	}
	job := e.submit(muster.Job{Targets: []string{"a"}})
	keep := e.submit(muster.Job{Targets: []string{"b"}, Spec: spec("keep")})
	for _, id := range []int64{job.Runs["a"], keep.Runs["b"]} {
		if _, err := h.DB().ExecContext(e.ctx, `INSERT INTO run_output (run_id, attempt, stream, data, created_at)
			VALUES ($1, 0, 'stdout', $2, 0)`, id, []byte("stray\n")); err != nil {
			e.t.Fatal(err)
		}
	}
	e.wantData("the stray chunk", e.jobOutput(job.Job.ID), "stray\n")
	if got := e.cancel(job.Job.ID); got != (muster.CancelResult{Cancelled: 1}) {
		e.t.Fatalf("CancelJob = %+v", got)
	}
	e.wantData("after the cancel", e.jobOutput(job.Job.ID))
	e.wantData("another job's waiting run", e.jobOutput(keep.Job.ID), "stray\n")
}

// testOutputCoalesced: a job lists the output of the runs it was coalesced
// into, like ListRuns lists the runs.
func testOutputCoalesced(e *env) {
	j1 := e.submit(muster.Job{Targets: []string{"a"}, Spec: spec("x")})
	j2 := e.submit(muster.Job{Targets: []string{"a", "b"}, Spec: spec("x")})
	if !slices.Equal(j2.Coalesced, []string{"a"}) {
		e.t.Fatalf("job 2 did not share job 1's run on a: %+v", j2)
	}
	rs := e.claim("s", 10, 0)
	e.wantNodes(rs, "a", "b")
	e.appendOutput(chunk(rs[0], muster.OutputStdout, "shared\n"), chunk(rs[1], muster.OutputStdout, "own\n"))
	e.wantData("job 1", e.jobOutput(j1.Job.ID), "shared\n")
	got := e.jobOutput(j2.Job.ID)
	e.wantData("job 2", got, "shared\n", "own\n")
	if got[0].Node != "a" || got[0].RunID != j1.Runs["a"] || got[1].Node != "b" {
		e.t.Errorf("job 2's chunks: %+v", got)
	}
	// Cancelling job 1 hands the running run over to job 2; its output
	// is still job 1's to watch too (it still serves it), and job 2's.
	if res := e.cancel(j1.Job.ID); res != (muster.CancelResult{}) {
		e.t.Fatalf("CancelJob(job 1) = %+v; want the shared run handed over", res)
	}
	e.appendOutput(chunk(rs[0], muster.OutputStdout, "still\n"))
	e.wantData("job 1 after its cancel", e.jobOutput(j1.Job.ID), "shared\n", "still\n")
	e.wantData("job 2 after job 1's cancel", e.jobOutput(j2.Job.ID), "shared\n", "own\n", "still\n")
}

// testOutputInvalid: an unknown stream fails the whole batch with
// ErrInvalid, and ListOutput needs a job.
func testOutputInvalid(e *env) {
	job := e.submit(muster.Job{Targets: []string{"a"}})
	a := e.claim("s", 1, 0)[0]
	for _, stream := range []string{"", "stdin", "STDOUT", "stdout "} {
		err := e.s.AppendOutput(e.ctx, []muster.OutputChunk{chunk(a, muster.OutputStdout, "ok\n"), chunk(a, stream, "bad\n")})
		if !errors.Is(err, muster.ErrInvalid) {
			e.t.Errorf("AppendOutput(stream %q) = %v, want ErrInvalid", stream, err)
		}
	}
	e.wantData("after the invalid batches", e.jobOutput(job.Job.ID))
	for _, id := range []int64{0, -1} {
		if cs, err := e.s.ListOutput(e.ctx, muster.OutputFilter{JobID: id}); !errors.Is(err, muster.ErrInvalid) {
			e.t.Errorf("ListOutput(job %d) = %v, %v; want ErrInvalid", id, cs, err)
		}
	}
}

// testOutputBinary: output is bytes, not text: every byte value, invalid
// UTF-8 and NULs round-trip unchanged.
func testOutputBinary(e *env) {
	job := e.submit(muster.Job{Targets: []string{"a"}})
	a := e.claim("s", 1, 0)[0]
	every := make([]byte, 256)
	for i := range every {
		every[i] = byte(i)
	}
	big := make([]byte, 64<<10)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range big {
		big[i] = byte(rng.UintN(256))
	}
	want := [][]byte{every, {0x00}, {0xff, 0xfe, 0x00, '\n'}, []byte("caf\xc3\n\x00\x00end"), big, {0x00, 0xff}}
	var batch []muster.OutputChunk
	for i, d := range want {
		batch = append(batch, muster.OutputChunk{RunID: a.ID, Attempt: a.Attempt, Stream: []string{muster.OutputStdout, muster.OutputStderr}[i%2], Data: d})
	}
	e.appendOutput(batch...)
	got := e.jobOutput(job.Job.ID)
	if len(got) != len(want) {
		e.t.Fatalf("%d chunks, want %d", len(got), len(want))
	}
	for i, w := range want {
		if !bytes.Equal(got[i].Data, w) {
			e.t.Errorf("chunk %d: %d bytes %x..., want %d bytes %x...", i, len(got[i].Data), head(got[i].Data), len(w), head(w))
		}
	}
}

func head(b []byte) []byte { return b[:min(len(b), 16)] }

// testOutputConcurrent: appends from several servers run alongside
// watchers, heartbeats and completions. A watcher paging by id misses no
// chunk, and once every attempt has ended no chunk is left.
func testOutputConcurrent(e *env) {
	const servers, runsPer, rounds = 4, 5, 15
	var targets []string
	for i := range servers * runsPer {
		targets = append(targets, fmt.Sprintf("n%02d", i))
	}
	job := e.submit(muster.Job{Targets: targets})
	held := make([][]muster.Run, servers)
	for i := range servers {
		held[i] = e.claim(fmt.Sprint("s", i), runsPer, 0)
		if len(held[i]) != runsPer {
			e.t.Fatalf("server %d claimed %d runs", i, len(held[i]))
		}
	}
	appendAll := func(i, round int) error {
		var batch []muster.OutputChunk
		for _, r := range held[i] {
			batch = append(batch, chunk(r, muster.OutputStdout, fmt.Sprintf("%s %d\n", r.Node, round)))
		}
		return e.s.AppendOutput(e.ctx, batch)
	}

	// Phase 1: a watcher pages by id while the servers append.
	var wg sync.WaitGroup
	errs := make(chan error, 2*servers+2)
	for i := range servers {
		wg.Go(func() {
			for round := range rounds {
				if err := appendAll(i, round); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	stop := make(chan struct{})
	seen := map[int64]bool{}
	var after int64
	watch := func() error {
		cs, err := e.s.ListOutput(e.ctx, muster.OutputFilter{JobID: job.Job.ID, AfterID: after})
		for _, c := range cs {
			seen[c.ID] = true
			after = c.ID
		}
		return err
	}
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		for {
			select {
			case <-stop:
				return
			default:
			}
			if err := watch(); err != nil {
				errs <- err
				return
			}
		}
	}()
	wg.Wait()
	close(stop)
	<-watched
	if err := watch(); err != nil {
		e.t.Fatal(err)
	}
	select {
	case err := <-errs:
		e.t.Fatal(err)
	default:
	}
	all := e.output(muster.OutputFilter{JobID: job.Job.ID, Limit: 10000})
	if len(all) != servers*runsPer*rounds {
		e.t.Fatalf("%d chunks stored, want %d", len(all), servers*runsPer*rounds)
	}
	var missed []int64
	for _, c := range all {
		if !seen[c.ID] {
			missed = append(missed, c.ID)
		}
	}
	if len(missed) > 0 {
		e.t.Fatalf("the watcher paged past %d chunks (ids %v)", len(missed), missed[:min(len(missed), 10)])
	}

	// Phase 2: the servers keep appending while their runs complete (and
	// heartbeat meanwhile); a completion keeps no chunk of its attempt.
	for i := range servers {
		wg.Go(func() {
			for round := range rounds {
				if err := appendAll(i, rounds+round); err != nil {
					errs <- err
					return
				}
			}
		})
		wg.Go(func() {
			for _, r := range slices.Backward(held[i]) {
				if _, err := e.s.Heartbeat(e.ctx, muster.HeartbeatParams{Server: r.LeaseOwner, LeaseTTL: time.Minute}); err != nil {
					errs <- err
					return
				}
				if _, err := muster.CompleteRun(e.ctx, e.s, muster.CompleteParams{RunID: r.ID, Server: r.LeaseOwner, Attempt: r.Attempt,
					Outcome: muster.OutcomeSucceeded}); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		e.t.Error(err)
	}
	if j := e.job(job.Job.ID); j.Counts[muster.RunSucceeded] != servers*runsPer {
		e.t.Fatalf("job %v, want every run succeeded", j.Counts)
	}
	if cs := e.jobOutput(job.Job.ID); len(cs) != 0 {
		e.t.Fatalf("%d chunks left once every attempt ended: %q", len(cs), datas(cs))
	}
}
