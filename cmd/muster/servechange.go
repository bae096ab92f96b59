package main

// servechange.go wires change-driven continuous jobs into the server: fact
// changes (inventory reloads, agents' uploads) bump the node's runs of the
// jobs whose facts_used they touch, and result changes are published.

import (
	"context"
	"log/slog"

	"github.com/muster-run/muster"
	"github.com/muster-run/muster/internal/events"
	"github.com/muster-run/muster/internal/project"
)

// wireChanges connects the fact-change topic to the store and returns the
// dispatcher's OnResultChange hook.
func wireChanges(ctx context.Context, store muster.Store, hub *events.Hub, live *project.Live,
	signalNodes func(context.Context, ...string) error, log *slog.Logger) func(muster.Run, muster.ResultChange) {
	live.OnFactsChanged(func(node string, facts []string) {
		hub.Facts().Publish(events.FactChange{Node: node, Facts: facts, Source: "inventory"})
	})
	hub.Facts().Handle(func(c events.FactChange) {
		log.Info("facts changed", "node", c.Node, "facts", c.Facts, "source", c.Source)
		jobs, err := store.FactsChanged(ctx, c.Node, c.Facts)
		if err != nil {
			log.Error("bumping runs for changed facts", "node", c.Node, "facts", c.Facts, "err", err)
			return
		}
		if len(jobs) > 0 {
			log.Info("facts changed: runs moved to the front", "node", c.Node, "facts", c.Facts, "source", c.Source, "jobs", jobs)
			hub.Publish(jobs...)
		}
	})
	return func(_ muster.Run, c muster.ResultChange) {
		log.Info("result changed", "job", c.JobID, "node", c.Node, "run", c.RunID, "on_change_job", c.OnChangeJob,
			"bumped", c.Bumped)
		hub.Results().Publish(c)
		if c.OnChangeJob == 0 {
			return
		}
		hub.Publish(c.OnChangeJob)
		if c.OnChangeKind == muster.JobPull { // agent-run: wake the node's held check-in, on any server
			hub.PublishNode(c.Node)
			if signalNodes != nil {
				if err := signalNodes(ctx, c.Node); err != nil {
					log.Warn("signalling a node", "node", c.Node, "err", err)
				}
			}
		}
	}
}
