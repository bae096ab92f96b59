package muster

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestContextError(t *testing.T) {
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	because, cancelCause := context.WithCancelCause(context.Background())
	cancelCause(errors.New("job 7 cancelled by request"))
	expired, cancelT := context.WithTimeout(context.Background(), -time.Second)
	defer cancelT()
	late, cancelL := context.WithTimeoutCause(context.Background(), -time.Second, errors.New("run timeout of 5s reached"))
	defer cancelL()
	for _, tc := range []struct {
		name string
		ctx  context.Context
		kind string
		msg  string
		is   error
	}{
		{"plain cancel", cancelled, KindCancelled, "command on web1 was cancelled: context canceled", context.Canceled},
		{"cancel with cause", because, KindCancelled, "command on web1 was cancelled: job 7 cancelled by request", context.Canceled},
		{"deadline", expired, KindTimeout, "command on web1 timed out: context deadline exceeded", context.DeadlineExceeded},
		{"deadline with cause", late, KindTimeout, "command on web1 timed out: run timeout of 5s reached", context.DeadlineExceeded},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := ContextError(tc.ctx, "command on web1")
			if e.Kind != tc.kind || e.Msg != tc.msg || !errors.Is(e, tc.is) {
				t.Errorf("got %s %q (is %v: %v), want %s %q", e.Kind, e.Msg, tc.is, errors.Is(e, tc.is), tc.kind, tc.msg)
			}
		})
	}
}
