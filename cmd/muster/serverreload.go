package main

// serverreload.go: the server's project (inventory, tasks, plans) is read
// at start and again on SIGHUP or, with --watch-project, when its files
// change. A reload that fails keeps the previous project.

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"syscall"

	"github.com/muster-run/muster"
	"github.com/muster-run/muster/internal/filewatch"
	"github.com/muster-run/muster/internal/project"
)

// reloader reloads the server's project on demand.
type reloader struct {
	live       *project.Live
	transports map[string]muster.Transport
	log        *slog.Logger
	onReload   func(*project.Project) // may be nil
}

// reload reads the project again and swaps it in, or logs why not.
func (r *reloader) reload(why string) {
	p, err := r.live.Reload()
	if err != nil {
		r.log.Error("project not reloaded: keeping the previous inventory, tasks and plans", "trigger", why, "err", err)
		return
	}
	// The fix that prompted the reload may be a key or an authorized_keys
	// entry: targets whose authentication failed are tried again.
	for _, tr := range r.transports {
		if f, ok := tr.(interface{ ForgetAuthFailures() }); ok {
			f.ForgetAuthFailures()
		}
	}
	if r.onReload != nil {
		r.onReload(p)
	}
	r.log.Info("project reloaded", append([]any{"trigger", why}, p.Summary()...)...)
}

// watch reloads on SIGHUP and, when files is true, on changes to the
// project's files, until ctx ends; it returns once the file watch is in
// place (or has failed to start). wg owns its goroutines.
func (r *reloader) watch(ctx context.Context, wg *sync.WaitGroup, files bool) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	wg.Go(func() {
		defer signal.Stop(hup)
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				r.reload("SIGHUP")
			}
		}
	})
	if !files {
		return
	}
	var spec filewatch.Spec
	spec.Files, spec.Trees = r.live.Options().Watched()
	ready := make(chan struct{})
	spec.Ready = func() { close(ready) }
	failed := make(chan struct{})
	wg.Go(func() {
		err := filewatch.Run(ctx, spec, func() { r.reload("files changed") },
			func(err error) { r.log.Warn("watching the project's files", "err", err) })
		if err != nil {
			r.log.Warn("not watching the project's files (SIGHUP still reloads)", "err", err)
			close(failed)
		}
	})
	select {
	case <-ready:
	case <-failed:
	}
}
