// Package transporttest is the conformance suite every muster.Transport
// runs: exit codes, stream separation, large output, stdin, concurrency,
// cancellation reaching the remote process, deadlines and goroutine leaks.
package transporttest

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/muster-run/muster"
)

// Run runs the suite. newTransport returns a fresh transport (the suite
// closes it); target returns the target every command runs on. The remote
// shell must be POSIX sh with head, cat, wc, sleep and /proc.
func Run(t *testing.T, newTransport func(t *testing.T) muster.Transport, target func(t *testing.T) *muster.Target) {
	s := &suite{newTransport: newTransport, target: target}
	t.Run("ExitCodes", s.exitCodes)
	t.Run("StdoutStderr", s.stdoutStderr)
	t.Run("LargeOutput", s.largeOutput)
	t.Run("Stdin", s.stdin)
	t.Run("NilStdin", s.nilStdin)
	t.Run("Concurrent", s.concurrent)
	t.Run("CancelKillsRemote", s.cancel)
	t.Run("Deadline", s.deadline)
	t.Run("NoGoroutineLeak", s.noLeak)
}

type suite struct {
	newTransport func(t *testing.T) muster.Transport
	target       func(t *testing.T) *muster.Target
}

func (s *suite) setup(t *testing.T) (muster.Transport, *muster.Target) {
	t.Helper()
	tg := s.target(t)
	tr := s.newTransport(t)
	t.Cleanup(func() { tr.Close() })
	return tr, tg
}

// Result is what Exec produced.
type Result struct {
	Code           int
	Stdout, Stderr string
	Err            error
}

// Exec runs line with optional stdin and captures both streams.
func Exec(ctx context.Context, tr muster.Transport, tg *muster.Target, line string, stdin io.Reader) Result {
	var out, errb bytes.Buffer
	code, err := tr.Exec(ctx, tg, &muster.Command{Line: line, Stdin: stdin, Stdout: &out, Stderr: &errb})
	return Result{code, out.String(), errb.String(), err}
}

func (s *suite) exitCodes(t *testing.T) {
	tr, tg := s.setup(t)
	for _, want := range []int{0, 1, 42} {
		r := Exec(context.Background(), tr, tg, fmt.Sprintf("exit %d", want), nil)
		if r.Err != nil || r.Code != want {
			t.Errorf("exit %d: got code %d, err %v", want, r.Code, r.Err)
		}
	}
}

func (s *suite) stdoutStderr(t *testing.T) {
	tr, tg := s.setup(t)
	r := Exec(context.Background(), tr, tg, "echo out; echo err >&2; echo out2; exit 3", nil)
	if r.Err != nil {
		t.Fatal(r.Err)
	}
	if r.Stdout != "out\nout2\n" || r.Stderr != "err\n" || r.Code != 3 {
		t.Errorf("got stdout %q stderr %q code %d; want %q %q 3", r.Stdout, r.Stderr, r.Code, "out\nout2\n", "err\n")
	}
}

// countWriter counts bytes and checks they are all 'x'.
type countWriter struct {
	mu  sync.Mutex
	n   int
	bad bool
}

func (w *countWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.n += len(p)
	if bytes.IndexFunc(p, func(r rune) bool { return r != 'x' }) >= 0 {
		w.bad = true
	}
	return len(p), nil
}

func (s *suite) largeOutput(t *testing.T) {
	tr, tg := s.setup(t)
	const n = 6 << 20
	line := fmt.Sprintf("head -c %d /dev/zero | tr '\\0' x & head -c %d /dev/zero | tr '\\0' x >&2; wait", n, n/2)
	var out, errw countWriter
	code, err := tr.Exec(context.Background(), tg, &muster.Command{Line: line, Stdout: &out, Stderr: &errw})
	if err != nil || code != 0 {
		t.Fatalf("code %d, err %v", code, err)
	}
	if out.n != n || errw.n != n/2 || out.bad || errw.bad {
		t.Errorf("got %d stdout bytes, %d stderr bytes (corrupt: %v %v); want %d and %d", out.n, errw.n, out.bad, errw.bad, n, n/2)
	}
}

func (s *suite) stdin(t *testing.T) {
	tr, tg := s.setup(t)
	r := Exec(context.Background(), tr, tg, "cat; echo done", strings.NewReader("hello\nworld\n"))
	if r.Err != nil || r.Stdout != "hello\nworld\ndone\n" {
		t.Errorf("cat: stdout %q err %v", r.Stdout, r.Err)
	}
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<17) // 2 MiB
	r = Exec(context.Background(), tr, tg, "wc -c", bytes.NewReader(big))
	if r.Err != nil || strings.TrimSpace(r.Stdout) != fmt.Sprint(len(big)) {
		t.Errorf("wc -c of %d bytes: stdout %q err %v", len(big), r.Stdout, r.Err)
	}
	// A command that ignores its input still finishes.
	r = Exec(context.Background(), tr, tg, "echo ignored", bytes.NewReader(big))
	if r.Err != nil || r.Stdout != "ignored\n" {
		t.Errorf("ignoring stdin: stdout %q err %v", r.Stdout, r.Err)
	}
}

func (s *suite) nilStdin(t *testing.T) {
	tr, tg := s.setup(t)
	r := Exec(context.Background(), tr, tg, "cat; echo eof", nil)
	if r.Err != nil || r.Stdout != "eof\n" {
		t.Errorf("stdout %q err %v; want %q", r.Stdout, r.Err, "eof\n")
	}
}

func (s *suite) concurrent(t *testing.T) {
	tr, tg := s.setup(t)
	const n = 50
	var wg sync.WaitGroup
	results := make([]Result, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = Exec(context.Background(), tr, tg, fmt.Sprintf("echo %d; echo e%d >&2; exit %d", i, i, i%3), nil)
		}()
	}
	wg.Wait()
	for i, r := range results {
		want := Result{Code: i % 3, Stdout: fmt.Sprintf("%d\n", i), Stderr: fmt.Sprintf("e%d\n", i)}
		if r.Err != nil || r.Code != want.Code || r.Stdout != want.Stdout || r.Stderr != want.Stderr {
			t.Errorf("exec %d: got %+v, want %+v", i, r, want)
		}
	}
}

// startAndCancel runs a long command printing its pids, cancels or times it
// out, and returns the pids and Exec's error.
func startAndCancel(t *testing.T, tr muster.Transport, tg *muster.Target, ctx context.Context, cancel func()) ([]string, error) {
	t.Helper()
	pr, pw := io.Pipe()
	errc := make(chan error, 1)
	go func() {
		_, err := tr.Exec(ctx, tg, &muster.Command{Line: "sleep 300 & echo $$ $!; wait", Stdout: pw})
		pw.Close()
		errc <- err
	}()
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		t.Fatalf("reading pids: %v (exec: %v)", err, <-errc)
	}
	go io.Copy(io.Discard, pr)
	if cancel != nil {
		cancel()
	}
	return strings.Fields(line), <-errc
}

// waitGone polls (with a fresh Exec) until none of pids is a live process.
func waitGone(t *testing.T, tr muster.Transport, tg *muster.Target, pids []string) {
	t.Helper()
	check := "for p in " + strings.Join(pids, " ") + `; do s=$(cut -d' ' -f3 /proc/$p/stat 2>/dev/null); [ -n "$s" ] && [ "$s" != Z ] && echo $p; done; true`
	var alive string
	for range 200 {
		r := Exec(context.Background(), tr, tg, check, nil)
		if r.Err != nil {
			t.Fatalf("checking processes: %v", r.Err)
		}
		if alive = strings.TrimSpace(r.Stdout); alive == "" {
			return
		}
		time.Sleep(25 * time.Millisecond)
	}
	t.Errorf("remote processes still running after cancel: %s", alive)
}

func (s *suite) cancel(t *testing.T) {
	tr, tg := s.setup(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pids, err := startAndCancel(t, tr, tg, ctx, cancel)
	if len(pids) != 2 {
		t.Fatalf("pids = %q", pids)
	}
	if !errors.Is(err, context.Canceled) || muster.KindOf(err) != muster.KindCancelled {
		t.Errorf("err = %v (kind %q), want context.Canceled with kind %s", err, muster.KindOf(err), muster.KindCancelled)
	}
	waitGone(t, tr, tg, pids)
}

func (s *suite) deadline(t *testing.T) {
	tr, tg := s.setup(t)
	Exec(context.Background(), tr, tg, "true", nil) // connect first: the deadline is for the command
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	pids, err := startAndCancel(t, tr, tg, ctx, nil)
	if !errors.Is(err, context.DeadlineExceeded) || muster.KindOf(err) != muster.KindTimeout {
		t.Errorf("err = %v (kind %q), want context.DeadlineExceeded with kind %s", err, muster.KindOf(err), muster.KindTimeout)
	}
	waitGone(t, tr, tg, pids)
}

func (s *suite) noLeak(t *testing.T) {
	tg := s.target(t)
	before := runtime.NumGoroutine()
	tr := s.newTransport(t)
	var wg sync.WaitGroup
	for i := range 12 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			Exec(context.Background(), tr, tg, "cat; echo x", strings.NewReader(fmt.Sprint(i)))
		}()
	}
	wg.Wait()
	ctx, cancel := context.WithCancel(context.Background())
	startAndCancel(t, tr, tg, ctx, cancel)
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}
	var now int
	for range 200 {
		if now = runtime.NumGoroutine(); now <= before {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	buf := make([]byte, 1<<20)
	t.Errorf("goroutines: %d before, %d after Close\n%s", before, now, buf[:runtime.Stack(buf, true)])
}
