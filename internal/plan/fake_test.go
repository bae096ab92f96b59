package plan

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/muster-run/muster"
	"github.com/muster-run/muster/internal/target"
)

// fakeRunner records calls and returns scripted results. A target fails
// an action when fail holds "object@target" or "object@*".
type fakeRunner struct {
	mu       sync.Mutex
	calls    []string
	opts     []StepOptions
	fail     map[string]bool
	messages []string
	events   []string
	specs    []string // every spec given to ResolveTargets
}

func newFake(fail ...string) *fakeRunner {
	f := &fakeRunner{fail: map[string]bool{}}
	for _, x := range fail {
		f.fail[x] = true
	}
	return f
}

func (f *fakeRunner) ResolveTargets(specs []string) ([]*muster.Target, error) {
	var out []*muster.Target
	f.mu.Lock()
	f.specs = append(f.specs, specs...)
	f.mu.Unlock()
	var toks []string
	for _, spec := range specs {
		t, err := target.Split(spec)
		if err != nil {
			return nil, err
		}
		toks = append(toks, t...)
	}
	for _, s := range toks {
		if s == "bad" {
			return nil, fmt.Errorf("unknown target %q", s)
		}
		if s == "all" {
			for _, n := range []string{"t1", "t2", "t3"} {
				out = append(out, &muster.Target{Name: n, Host: n})
			}
			continue
		}
		out = append(out, &muster.Target{Name: s, Host: s})
	}
	return out, nil
}

func (f *fakeRunner) do(action, object string, targets []*muster.Target, o StepOptions, value func(t *muster.Target) map[string]any) ([]*muster.Result, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	names := make([]string, len(targets))
	for i, t := range targets {
		names[i] = t.Name
	}
	f.calls = append(f.calls, fmt.Sprintf("%s %s on %s", action, object, strings.Join(names, ",")))
	f.opts = append(f.opts, o)
	var out []*muster.Result
	for _, t := range targets {
		r := &muster.Result{Target: t.Name, Action: action, Object: object, Value: value(t)}
		if f.fail[object+"@"+t.Name] || f.fail[object+"@*"] {
			r.Error = muster.Errorf(muster.KindCommand, "%s failed on %s", object, t.Name)
		}
		out = append(out, r)
	}
	return out, nil
}

func cmdValue(out string) func(*muster.Target) map[string]any {
	return func(t *muster.Target) map[string]any {
		s := strings.ReplaceAll(out, "{t}", t.Name)
		return map[string]any{"stdout": s, "stderr": "", "merged_output": s, "exit_code": 0}
	}
}

func (f *fakeRunner) RunCommand(_ context.Context, ts []*muster.Target, cmd string, o StepOptions) ([]*muster.Result, error) {
	out := "{t}.example.com\n"
	if strings.HasPrefix(cmd, "echo ") {
		out = strings.TrimPrefix(cmd, "echo ") + "@{t}"
	}
	return f.do("command", cmd, ts, o, cmdValue(out))
}

func (f *fakeRunner) RunScript(_ context.Context, ts []*muster.Target, script string, args []string, o StepOptions) ([]*muster.Result, error) {
	return f.do("script", script+" "+strings.Join(args, " "), ts, o, cmdValue("script"))
}

func (f *fakeRunner) RunTask(_ context.Context, ts []*muster.Target, task string, params map[string]any, o StepOptions) ([]*muster.Result, error) {
	keys := slices.Sorted(maps.Keys(params))
	var kv []string
	for _, k := range keys {
		kv = append(kv, fmt.Sprintf("%s=%v", k, params[k]))
	}
	return f.do("task", task+"("+strings.Join(kv, ",")+")", ts, o, func(*muster.Target) map[string]any { return map[string]any{"installed": true} })
}

func (f *fakeRunner) Upload(_ context.Context, ts []*muster.Target, src, dest string, o StepOptions) ([]*muster.Result, error) {
	return f.do("upload", src+"->"+dest, ts, o, func(*muster.Target) map[string]any { return map[string]any{"_output": "uploaded"} })
}

func (f *fakeRunner) Download(_ context.Context, ts []*muster.Target, src, dest string, o StepOptions) ([]*muster.Result, error) {
	return f.do("download", src+"->"+dest, ts, o, func(*muster.Target) map[string]any { return map[string]any{"_output": "downloaded"} })
}

func (f *fakeRunner) WaitUntilAvailable(_ context.Context, ts []*muster.Target, d time.Duration) ([]*muster.Result, error) {
	return f.do("wait", d.String(), ts, StepOptions{}, func(*muster.Target) map[string]any { return map[string]any{} })
}

func (f *fakeRunner) Message(text string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.messages = append(f.messages, text)
}

func (f *fakeRunner) StepStarted(desc string, ts []*muster.Target) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.events = append(f.events, "start "+desc)
}

func (f *fakeRunner) StepFinished(desc string, rs []*muster.Result, _ time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.events = append(f.events, fmt.Sprintf("finish %s (%d)", desc, len(rs)))
}

func (f *fakeRunner) sortedCalls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := append([]string{}, f.calls...)
	sort.Strings(out)
	return out
}
