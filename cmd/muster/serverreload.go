package main

// serverreload.go: the server's project (inventory, tasks, plans) is read
// at start and again on SIGHUP or, with --watch-project, when its files
// change. A reload that fails keeps the previous project.

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/muster-run/muster/internal/filewatch"
)

// loadProject reads the inventory, tasks and plans, as the CLI does.
func (a *app) loadProject(c *cobra.Command) (*loadedProject, error) {
	inv, err := a.loadInventory(c)
	if err != nil {
		return nil, err
	}
	tasks, err := a.taskIndex()
	if err != nil {
		return nil, err
	}
	plans, err := a.planIndex()
	if err != nil {
		return nil, err
	}
	path, err := a.inventoryPath()
	if err != nil {
		return nil, err
	}
	return &loadedProject{inv: inv, inventory: path, tasks: tasks, plans: plans}, nil
}

// logAttrs describe a loaded project for the server's log.
func (p *loadedProject) logAttrs() []any {
	inv := p.inventory
	if inv == "" {
		inv = "none (ad-hoc targets only)"
	}
	return []any{"inventory", inv, "targets", len(p.inv.Targets()), "groups", len(p.inv.GroupNames()),
		"tasks", len(p.tasks.List(true)), "plans", len(p.plans.List(true))}
}

// projectFiles is what a project reload reads: the inventory file and
// the module path.
func (a *app) projectFiles() filewatch.Spec {
	var s filewatch.Spec
	if a.flags.inventoryFile != "" {
		s.Files = []string{a.flags.inventoryFile}
	} else if dir, err := a.projectDir(); err == nil {
		s.Files = []string{filepath.Join(dir, "inventory.yaml")}
	}
	s.Trees, _ = a.modulePath()
	return s
}

// reloader reloads the engine's project on demand, one reload at a time.
type reloader struct {
	a   *app
	c   *cobra.Command
	eng *jobEngine
	log *slog.Logger
	mu  sync.Mutex
}

// reload reads the project again and swaps it in, or logs why not.
func (r *reloader) reload(why string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	p, err := r.a.loadProject(r.c)
	if err != nil {
		r.log.Error("project not reloaded: keeping the previous inventory, tasks and plans", "trigger", why, "err", err)
		return
	}
	r.eng.proj.Store(p)
	// The fix that prompted the reload may be a key or an authorized_keys
	// entry: targets whose authentication failed are tried again.
	for _, tr := range r.eng.runner.Transports {
		if f, ok := tr.(interface{ ForgetAuthFailures() }); ok {
			f.ForgetAuthFailures()
		}
	}
	r.log.Info("project reloaded", append([]any{"trigger", why}, p.logAttrs()...)...)
}

// watchProject reloads on SIGHUP and, when files is true, on changes to
// the project's files, until ctx ends. wg owns its goroutines.
func (r *reloader) watchProject(ctx context.Context, wg *sync.WaitGroup, files bool) {
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
	spec := r.a.projectFiles()
	wg.Go(func() {
		err := filewatch.Run(ctx, spec, func() { r.reload("files changed") },
			func(err error) { r.log.Warn("watching the project's files", "err", err) })
		if err != nil {
			r.log.Warn("not watching the project's files (SIGHUP still reloads)", "err", err)
		}
	})
}
