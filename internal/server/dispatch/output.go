package dispatch

// output.go carries the live output of running runs to the store, where
// any server's API can stream it to watchers (muster job watch).

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"slices"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/muster-run/muster"
)

// Output receives one attempt's live output: what the executor's action
// writes to them reaches watchers within about one OutputInterval. Writes
// never fail and never wait for the store. It is a view for watchers; the
// Outcome's Result stays the record of the attempt's output.
type Output struct {
	Stdout, Stderr io.Writer
}

// Limits of live output. Past liveCap bytes on a stream (or when the store
// falls so far behind that pendingCap bytes wait), the rest of that stream
// is not streamed: watchers read it from the result when the run ends, and
// what they were shown is always a prefix of it.
const (
	liveCap       = 1 << 20
	pendingCap    = 256 << 10
	longLine      = 16 << 10 // a line this long is flushed without its end
	appendTimeout = 10 * time.Second
)

// outputs buffers the live output of this dispatcher's running attempts
// and appends it to the store in batches, whole lines at a time, from one
// goroutine (flusher), so a run's chunks are stored in order.
type outputs struct {
	queue  muster.WorkQueue
	log    *slog.Logger
	stored func(jobs []int64) // Hooks.OnStored; may be nil

	mu   sync.Mutex
	open map[int64]*liveRun // by run id: attempts still running

	// writing is held by flush while it appends, so that done can wait
	// for a batch holding a run's chunks to be stored before the run's
	// completion deletes them.
	writing sync.Mutex
}

// liveRun is one attempt's buffered output.
type liveRun struct {
	run     muster.Run
	streams [2]liveStream // stdout, stderr
	flushed bool          // some chunk of it went into a batch
	closed  bool
}

type liveStream struct {
	pending []byte
	sent    int  // bytes handed to the store so far
	stopped bool // over a limit: nothing more is streamed
}

func newOutputs(queue muster.WorkQueue, log *slog.Logger, stored func(jobs []int64)) *outputs {
	return &outputs{queue: queue, log: log, stored: stored, open: map[int64]*liveRun{}}
}

// start opens r's live output.
func (o *outputs) start(r muster.Run) (*liveRun, Output) {
	lr := &liveRun{run: r}
	o.mu.Lock()
	o.open[r.ID] = lr
	o.mu.Unlock()
	return lr, Output{Stdout: &liveWriter{o: o, lr: lr, i: 0}, Stderr: &liveWriter{o: o, lr: lr, i: 1}}
}

// done closes lr: what it still buffers is dropped (the result has it),
// and once done returns, every chunk of it that was appended is in the
// store, so the run's completion finds and deletes them.
func (o *outputs) done(lr *liveRun) {
	o.mu.Lock()
	lr.closed = true
	delete(o.open, lr.run.ID)
	flushed := lr.flushed
	o.mu.Unlock()
	if flushed {
		o.writing.Lock()
		//lint:ignore SA2001 waiting for the batch in flight is the point
		o.writing.Unlock()
	}
}

// liveWriter is one stream of one attempt.
type liveWriter struct {
	o  *outputs
	lr *liveRun
	i  int
}

func (w *liveWriter) Write(p []byte) (int, error) {
	w.o.mu.Lock()
	defer w.o.mu.Unlock()
	s := &w.lr.streams[w.i]
	if w.lr.closed || s.stopped {
		return len(p), nil
	}
	if s.sent+len(s.pending)+len(p) > liveCap || len(s.pending)+len(p) > pendingCap {
		s.stopped, s.pending = true, nil
		return len(p), nil
	}
	s.pending = append(s.pending, p...)
	return len(p), nil
}

// take cuts what is ready to send from s: everything up to its last
// newline, or a long line's first part, cut on a rune boundary so that a
// chunk is never split inside a UTF-8 character.
func (s *liveStream) take() []byte {
	n := bytes.LastIndexByte(s.pending, '\n') + 1
	if n == 0 && len(s.pending) >= longLine {
		n = len(s.pending)
		for k := 0; k < utf8.UTFMax && n > 0 && !utf8.Valid(s.pending[:n]); k++ {
			n--
		}
		if !utf8.Valid(s.pending[:n]) { // not text: send it as it is
			n = len(s.pending)
		}
	}
	if n == 0 {
		return nil
	}
	chunk := bytes.Clone(s.pending[:n])
	s.pending = append(s.pending[:0], s.pending[n:]...)
	s.sent += n
	return chunk
}

// flush appends every open attempt's ready output to the store in one
// batch. A failed append is logged and its chunks dropped: live output is
// best effort, and the results keep the output.
func (o *outputs) flush(ctx context.Context) {
	o.writing.Lock()
	defer o.writing.Unlock()
	var chunks []muster.OutputChunk
	var jobs []int64
	o.mu.Lock()
	for _, lr := range o.open {
		added := false
		for i := range lr.streams {
			if data := lr.streams[i].take(); data != nil {
				chunks = append(chunks, muster.OutputChunk{RunID: lr.run.ID, Attempt: lr.run.Attempt,
					Stream: [2]string{muster.OutputStdout, muster.OutputStderr}[i], Data: data})
				lr.flushed, added = true, true
			}
		}
		if added && !slices.Contains(jobs, lr.run.JobID) {
			jobs = append(jobs, lr.run.JobID)
		}
	}
	o.mu.Unlock()
	if len(chunks) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, appendTimeout)
	defer cancel()
	if err := o.queue.AppendOutput(ctx, chunks); err != nil {
		if ctx.Err() == nil {
			o.log.Warn("live output not stored (results keep it)", "chunks", len(chunks), "err", err)
		}
		return
	}
	if o.stored != nil {
		o.stored(jobs)
	}
}

// flusher flushes every interval until ctx ends.
func (o *outputs) flusher(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			o.flush(ctx)
		}
	}
}
