package main

import (
	"context"
	"crypto/sha256"
	"fmt"
	"time"

	"github.com/muster-run/muster"
	"github.com/muster-run/muster/internal/engine"
	"github.com/muster-run/muster/internal/server/dispatch"
)

// queueGuard names this queue's per-node lock on the targets: every
// server of one database uses the same name, so an attempt orphaned by a
// dead server and its retry on another never run at once on a node.
func queueGuard(storeDesc string) string {
	return fmt.Sprintf("q%x", sha256.Sum256([]byte(storeDesc)))[:17]
}

// runExecutor adapts the engine to the dispatcher. With fake set
// (--backend fake:D) every run sleeps D and succeeds without touching a
// target: queue benchmarks and fault tests measure the queue alone.
type runExecutor struct {
	eng  *engine.Engine
	fake *time.Duration
}

func (x runExecutor) Execute(ctx context.Context, r muster.Run, live dispatch.Output) dispatch.Outcome {
	var res *muster.Result
	if x.fake != nil {
		res = fakeRun(ctx, r, *x.fake)
	} else {
		res = x.eng.Run(ctx, r, live.Stdout, live.Stderr)
	}
	out := dispatch.Outcome{OK: true}
	if b, err := res.MarshalJSON(); err == nil {
		out.Result = b
	}
	if code, ok := res.Value["exit_code"].(int); ok {
		out.ExitCode = code
	}
	if res.Error != nil {
		out.OK = false
		out.Error = res.Error.Kind + ": " + res.Error.Msg
		if code, ok := res.Error.Details["exit_code"].(int); ok {
			out.ExitCode = code
		}
	}
	return out
}

// fakeRun sleeps d and succeeds, unless ctx ends first.
func fakeRun(ctx context.Context, r muster.Run, d time.Duration) *muster.Result {
	res := &muster.Result{Target: r.Node, Action: string(r.Kind)}
	if spec, err := muster.DecodeJobSpec(r.Spec); err == nil {
		res.Object = spec.Object(r.Kind)
	}
	if d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			res.Error = muster.ContextError(ctx, fmt.Sprintf("run %d on %s", r.ID, r.Node))
			return res
		}
	}
	res.Value = map[string]any{"fake": true}
	return res
}
