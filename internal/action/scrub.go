package action

import (
	"bytes"
	"io"
	"strings"

	"github.com/muster-run/muster/internal/task"
)

// scrubWriter passes what is written to w with every secret replaced by
// task.Redacted, as scrub does for results, so that live output (--stream,
// the server's watchers) never shows a sensitive parameter a task echoes.
// It holds back a line until its end, since a secret split across two
// writes would otherwise get through; a very long line is passed on in
// pieces, keeping back enough of its end to hold any secret's beginning.
type scrubWriter struct {
	w       io.Writer
	secrets []string
	keep    int // the longest secret's length less one
	buf     []byte
}

// scrubbing wraps w when there are secrets to scrub.
func scrubbing(w io.Writer, secrets []string) io.Writer {
	var nonEmpty []string
	keep := 0
	for _, s := range secrets {
		if s != "" {
			nonEmpty = append(nonEmpty, s)
			keep = max(keep, len(s)-1)
		}
	}
	if w == nil || len(nonEmpty) == 0 {
		return w
	}
	return &scrubWriter{w: w, secrets: nonEmpty, keep: keep}
}

// scrubLongLine is how much of a line without an end is held back before
// it is passed on in pieces.
const scrubLongLine = 64 << 10

func (s *scrubWriter) Write(p []byte) (int, error) {
	s.buf = append(s.buf, p...)
	n := bytes.LastIndexByte(s.buf, '\n') + 1
	if n == 0 {
		if len(s.buf) < scrubLongLine {
			return len(p), nil
		}
		n = s.cut(max(len(s.buf)-s.keep, 0))
	}
	s.emit(n)
	return len(p), nil
}

// Flush passes on what is held back, then flushes w.
func (s *scrubWriter) Flush() {
	s.emit(len(s.buf))
	flush(s.w)
}

// emit passes on the first n bytes of the buffer, scrubbed.
func (s *scrubWriter) emit(n int) {
	if n == 0 {
		return
	}
	_, _ = s.w.Write(s.redact(s.buf[:n]))
	s.buf = append(s.buf[:0], s.buf[n:]...)
}

// cut moves n back to the start of any secret that would straddle it.
func (s *scrubWriter) cut(n int) int {
	for moved := true; moved; {
		moved = false
		for _, x := range s.secrets {
			for i := max(n-len(x)+1, 0); i < n; i++ {
				if bytes.HasPrefix(s.buf[i:], []byte(x)) {
					n, moved = i, true
					break
				}
			}
		}
	}
	return n
}

func (s *scrubWriter) redact(b []byte) []byte {
	text := string(b)
	for _, x := range s.secrets {
		text = strings.ReplaceAll(text, x, task.Redacted)
	}
	return []byte(text)
}
