package dispatch_test

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/muster-run/muster"
	"github.com/muster-run/muster/internal/server/dispatch"
)

// listOutput reads every chunk of a job's live output, and the bytes
// stored per run and stream.
func listOutput(t testing.TB, s muster.Store, job int64) ([]muster.OutputChunk, map[string][]byte) {
	t.Helper()
	chunks, err := s.ListOutput(context.Background(), muster.OutputFilter{JobID: job, Limit: 10000})
	if err != nil {
		t.Fatal(err)
	}
	by := map[string][]byte{}
	for _, c := range chunks {
		k := c.Node + "/" + c.Stream
		by[k] = append(by[k], c.Data...)
	}
	return chunks, by
}

// TestLiveOutput: what an executor writes reaches the store as whole
// lines while the run is still running, in order, with the run's node and
// attempt; a partial line waits for its end; the run's completion removes
// the chunks (its result holds the output).
func TestLiveOutput(t *testing.T) {
	store := openSQLite(t, "")
	release := make(chan struct{})
	f := newFake(nil)
	f.doOut = func(ctx context.Context, r muster.Run, out dispatch.Output) dispatch.Outcome {
		out.Stdout.Write([]byte("one\ntw"))
		out.Stdout.Write([]byte("o\nthr"))
		out.Stderr.Write([]byte("warn ü\n"))
		select {
		case <-release:
		case <-ctx.Done():
		}
		return dispatch.Outcome{OK: true}
	}
	start(t, dispatch.Config{Queue: store, Rescuer: store, Executor: f, Server: "web", OutputInterval: 10 * time.Millisecond})
	job := submit(t, store, "live", []string{"n1", "n2"}, nil)

	var by map[string][]byte
	waitFor(t, "live output of both runs", func() bool {
		_, by = listOutput(t, store, job.Job.ID)
		return len(by) == 4 && len(by["n1/stdout"]) == 8 && len(by["n2/stdout"]) == 8
	})
	chunks, _ := listOutput(t, store, job.Job.ID)
	for i, c := range chunks {
		if i > 0 && c.ID <= chunks[i-1].ID {
			t.Errorf("chunk ids not increasing: %d after %d", c.ID, chunks[i-1].ID)
		}
		if c.Attempt != 1 || c.RunID == 0 {
			t.Errorf("chunk %+v: want attempt 1 of a run", c)
		}
	}
	for _, n := range []string{"n1", "n2"} {
		if got := string(by[n+"/stdout"]); got != "one\ntwo\n" {
			t.Errorf("%s stdout streamed %q, want the whole lines %q", n, got, "one\ntwo\n")
		}
		if got := string(by[n+"/stderr"]); got != "warn ü\n" {
			t.Errorf("%s stderr streamed %q", n, got)
		}
	}
	close(release)
	waitFor(t, "the job to finish", func() bool {
		j, err := store.GetJob(context.Background(), job.Job.ID)
		return err == nil && j.State() == muster.JobSucceeded
	})
	if chunks, _ := listOutput(t, store, job.Job.ID); len(chunks) != 0 {
		t.Errorf("%d chunks left after the runs completed, want none", len(chunks))
	}
}

// TestLiveOutputLimit: past the live limit a stream stops streaming, and
// what was streamed is a prefix of what was written; a line longer than
// the long-line limit is streamed in parts, never split inside a UTF-8
// character.
func TestLiveOutputLimit(t *testing.T) {
	store := openSQLite(t, "")
	release, wrote := make(chan struct{}), make(chan struct{})
	var written bytes.Buffer
	long := strings.Repeat("é", 20<<10) // 40 KiB without a newline
	f := newFake(nil)
	f.doOut = func(ctx context.Context, r muster.Run, out dispatch.Output) dispatch.Outcome {
		out.Stderr.Write([]byte(long))
		line := []byte(strings.Repeat("x", 1023) + "\n")
		for i := 0; i < 2048; i++ { // 2 MiB in 1 KiB lines
			out.Stdout.Write(line)
			written.Write(line)
			if i%64 == 0 {
				time.Sleep(time.Millisecond) // let flushes interleave
			}
		}
		close(wrote)
		select { // a failing test must not hang its cleanup
		case <-release:
		case <-ctx.Done():
		}
		return dispatch.Outcome{OK: true}
	}
	start(t, dispatch.Config{Queue: store, Rescuer: store, Executor: f, Server: "web", OutputInterval: 5 * time.Millisecond})
	job := submit(t, store, "big", []string{"n1"}, nil)
	<-wrote
	var by map[string][]byte
	last := -1
	waitFor(t, "the streamed output to stop growing", func() bool {
		_, by = listOutput(t, store, job.Job.ID)
		// Stdout may have streamed nothing at all: on a loaded machine the
		// writes can outrun the flusher past the pending limit first.
		n := len(by["n1/stdout"])
		stable := n == last && len(by["n1/stderr"]) > 0
		last = n
		time.Sleep(20 * time.Millisecond)
		return stable
	})
	close(release)
	got := by["n1/stdout"]
	if len(got) > 1<<20 || !bytes.HasPrefix(written.Bytes(), got) {
		t.Errorf("streamed %d bytes of %d written to stdout; want at most 1 MiB, and a prefix", len(got), written.Len())
	}
	if e := string(by["n1/stderr"]); !strings.HasPrefix(long, e) || !strings.HasSuffix(e, "é") {
		t.Errorf("streamed %d bytes of the long line; want whole characters of it", len(e))
	}
}
