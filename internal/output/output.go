// Package output renders results for people and for programs: Bolt-shaped
// human text (with colour and a progress bar only on a terminal), Bolt's
// JSON document, and live per-line streaming of target output.
package output

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/muster-run/muster"
)

// Printer receives the events of one run. Calls are serialised by the
// executor, so implementations need no locking of their own.
type Printer interface {
	Started(t *muster.Target)
	Result(r *muster.Result)
	// Finish prints the summary. interrupted says the run was cut short.
	Finish(results []*muster.Result, elapsed time.Duration, interrupted bool) error
}

// JSON writes Bolt's document: {"items":[...],"target_count":N,"elapsed_time":S}.
// Items are written as each target finishes, in completion order.
type JSON struct {
	w     io.Writer
	count int
}

// NewJSON starts the document on w.
func NewJSON(w io.Writer) *JSON {
	io.WriteString(w, `{ "items": [`+"\n")
	return &JSON{w: w}
}

// Started does nothing: JSON output lists finished targets only.
func (j *JSON) Started(*muster.Target) {}

// Result writes one item.
func (j *JSON) Result(r *muster.Result) {
	r = Redact(r)
	b, err := json.Marshal(r)
	if err != nil {
		b, _ = json.Marshal(map[string]any{"target": r.Target, "status": "failure",
			"value": map[string]any{"_error": map[string]any{"kind": muster.KindInternal, "msg": err.Error()}}})
	}
	if j.count > 0 {
		io.WriteString(j.w, ",\n")
	}
	j.w.Write(b)
	j.count++
}

// Finish closes the document.
func (j *JSON) Finish(results []*muster.Result, elapsed time.Duration, interrupted bool) error {
	_, err := fmt.Fprintf(j.w, "\n],\n\"target_count\": %d, \"elapsed_time\": %d }\n", len(results), int(elapsed.Seconds()))
	return err
}

// Human writes Bolt-shaped text.
type Human struct {
	w       io.Writer
	color   bool
	verbose bool
	quiet   bool // --stream already showed the output
	bar     Bar
}

// Bar is the progress display, drawn on a terminal only.
type Bar interface {
	Clear()
	Add()
	Done()
}

// HumanOptions configure Human output.
type HumanOptions struct {
	Color   bool
	Verbose bool
	// Streamed says the output was already shown live, so results print
	// only their status and errors.
	Streamed bool
	Bar      Bar
}

// NewHuman returns a human printer writing to w.
func NewHuman(w io.Writer, o HumanOptions) *Human {
	return &Human{w: w, color: o.Color, verbose: o.Verbose, quiet: o.Streamed, bar: o.Bar}
}

func (h *Human) paint(code, s string) string {
	if !h.color {
		return s
	}
	return "\x1b[" + code + "m" + s + "\x1b[0m"
}

// Started prints "Started on T..." in verbose mode.
func (h *Human) Started(t *muster.Target) {
	if h.verbose {
		h.clear()
		fmt.Fprintf(h.w, "Started on %s...\n", t.Name)
	}
}

func (h *Human) clear() {
	if h.bar != nil {
		h.bar.Clear()
	}
}

// Result prints one target's outcome with its output indented.
func (h *Human) Result(r *muster.Result) {
	h.clear()
	r = Redact(r)
	var b strings.Builder
	notRun := !r.OK() && r.Error.Details["started"] == false
	switch {
	case r.OK() && h.quiet:
		// The output was shown live: nothing follows the status line.
		fmt.Fprintf(&b, "%s %s\n", h.paint("32", "Finished on"), r.Target)
	case r.OK():
		fmt.Fprintf(&b, "%s %s:\n", h.paint("32", "Finished on"), r.Target)
	case notRun:
		why := strings.TrimPrefix(r.Error.Msg, "not run on "+r.Target+": ")
		fmt.Fprintf(&b, "%s %s: %s\n", h.paint("33", "Not run on"), r.Target, why)
	default:
		fmt.Fprintf(&b, "%s %s:\n", h.paint("31", "Failed on"), r.Target)
		indent(&b, "  ", r.Error.Msg)
	}
	if !h.quiet && !notRun {
		h.value(&b, r)
	}
	io.WriteString(h.w, b.String())
	if h.bar != nil {
		h.bar.Add()
	}
}

func (h *Human) value(b *strings.Builder, r *muster.Result) {
	switch r.Action {
	case "plan":
		// A plan job's value is its return value, under its progress.
		if out, _ := r.Value["stdout"].(string); out != "" {
			b.WriteString("  STDOUT:\n")
			indent(b, "    ", out)
		}
		if v, ok := r.Value["value"]; ok && v != nil {
			pretty, _ := json.MarshalIndent(v, "", "  ")
			indent(b, "  ", string(pretty))
		}
	case "command", "script":
		out, _ := r.Value["stdout"].(string)
		errOut, _ := r.Value["stderr"].(string)
		if out != "" {
			b.WriteString("  STDOUT:\n")
			indent(b, "    ", out)
		}
		if errOut != "" {
			b.WriteString("  STDERR:\n")
			indent(b, "    ", errOut)
		}
		if out == "" && errOut == "" && r.OK() {
			b.WriteString("  " + strings.ToUpper(r.Action[:1]) + r.Action[1:] + " completed successfully with no output\n")
		}
	default:
		if !r.OK() && (r.Action == "upload" || r.Action == "download") {
			return // the error names what went wrong; the transfer's raw command output adds nothing
		}
		if msg, ok := r.Value["_output"].(string); ok {
			indent(b, "  ", msg)
			return
		}
		rest := map[string]any{}
		for k, v := range r.Value {
			if k != "_error" && k != "_output" {
				rest[k] = v
			}
		}
		if len(rest) > 0 {
			pretty, _ := json.MarshalIndent(rest, "", "  ")
			indent(b, "  ", string(pretty))
		}
	}
}

func indent(b *strings.Builder, prefix, text string) {
	text = strings.TrimRight(text, "\n")
	for _, line := range strings.Split(text, "\n") {
		b.WriteString(prefix)
		b.WriteString(line)
		b.WriteByte('\n')
	}
}

// Finish prints which targets succeeded and failed and the elapsed time.
func (h *Human) Finish(results []*muster.Result, elapsed time.Duration, interrupted bool) error {
	if h.bar != nil {
		h.bar.Done()
	}
	var ok, bad, notRun []string
	for _, r := range results {
		switch {
		case r.OK():
			ok = append(ok, r.Target)
		case r.Error.Details["started"] == false:
			notRun = append(notRun, r.Target)
		default:
			bad = append(bad, r.Target)
		}
	}
	sort.Strings(ok)
	sort.Strings(bad)
	sort.Strings(notRun)
	var b strings.Builder
	if interrupted {
		b.WriteString(h.paint("33", "Interrupted: remote commands were signalled and their channels closed; results so far:") + "\n")
	}
	if len(ok) > 0 {
		fmt.Fprintf(&b, "%s on %s: %s\n", h.paint("32", "Successful"), plural(len(ok), "target"), strings.Join(ok, ","))
	}
	if len(bad) > 0 {
		fmt.Fprintf(&b, "%s on %s: %s\n", h.paint("31", "Failed"), plural(len(bad), "target"), strings.Join(bad, ","))
	}
	if len(notRun) > 0 {
		fmt.Fprintf(&b, "%s on %s: %s\n", h.paint("33", "Not run"), plural(len(notRun), "target"), strings.Join(notRun, ","))
	}
	fmt.Fprintf(&b, "Ran on %s in %s\n", plural(len(results), "target"), formatElapsed(elapsed))
	_, err := io.WriteString(h.w, b.String())
	return err
}

func plural(n int, noun string) string {
	if n == 1 {
		return fmt.Sprintf("1 %s", noun)
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

func formatElapsed(d time.Duration) string {
	if d < time.Minute {
		return fmt.Sprintf("%.2f sec", d.Seconds())
	}
	return d.Round(time.Second).String()
}

// Stream writes target output live, one line at a time, as
// "[target] out: line" and "[target] err: line", as Bolt's --stream does.
type Stream struct {
	mu    sync.Mutex
	w     io.Writer
	clear func()
}

// NewStream returns a streamer writing to w. clear, if set, is called
// before each line (to lift a progress bar out of the way).
func NewStream(w io.Writer, clear func()) *Stream { return &Stream{w: w, clear: clear} }

// Writers returns line-prefixing writers for t's stdout and stderr.
func (s *Stream) Writers(t *muster.Target) (io.Writer, io.Writer) {
	return &lineWriter{s: s, prefix: "[" + t.Name + "] out: "}, &lineWriter{s: s, prefix: "[" + t.Name + "] err: "}
}

type lineWriter struct {
	s       *Stream
	prefix  string
	partial []byte
}

func (l *lineWriter) Write(p []byte) (int, error) {
	l.partial = append(l.partial, p...)
	i := bytes.LastIndexByte(l.partial, '\n')
	if i < 0 {
		if len(l.partial) < 64<<10 {
			return len(p), nil
		}
		i = len(l.partial) - 1 // a very long line is shown in pieces
	}
	chunk := l.partial[:i+1]
	var b bytes.Buffer
	sc := bufio.NewScanner(bytes.NewReader(chunk))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		b.WriteString(l.prefix)
		b.Write(sc.Bytes())
		b.WriteByte('\n')
	}
	l.partial = append(l.partial[:0], l.partial[i+1:]...)
	l.s.mu.Lock()
	defer l.s.mu.Unlock()
	if l.s.clear != nil {
		l.s.clear()
	}
	l.s.w.Write(b.Bytes())
	return len(p), nil
}

// Flush writes out a last line that had no newline.
func (l *lineWriter) Flush() {
	if len(l.partial) > 0 {
		l.Write([]byte("\n"))
	}
}
