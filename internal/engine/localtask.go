package engine

import (
	"context"
	"fmt"

	"github.com/muster-run/muster"
	"github.com/muster-run/muster/internal/action"
	"github.com/muster-run/muster/internal/inventory"
	"github.com/muster-run/muster/internal/target"
	"github.com/muster-run/muster/internal/task"
)

// LocalTask runs the task name on localhost with params, through r (which
// must have the local transport), and returns the task's result: its JSON
// output as a map. It is the inventory's task plugin
// (inventory.Options.RunTask), as Bolt's task plugin runs a task on
// localhost and uses its "value".
//
// The plugin runs while the inventory resolves a target and holds its
// lock, so localhost is built from an empty inventory, never looked up in
// the one being resolved: it gets Bolt's local defaults (the local
// transport, the puppet-agent feature, the bundled-Ruby mapping) and
// nothing from the project's inventory. warn, when set, receives warnings
// (a Ruby task running with the system Ruby).
func LocalTask(ctx context.Context, r *action.Runner, tasks *task.Index, name string, params map[string]any, warn func(string)) (map[string]any, error) {
	if tasks == nil {
		return nil, muster.Errorf(muster.KindInvalid, "cannot run task %s: no task index", name)
	}
	tk, err := tasks.Get(name)
	if err != nil {
		return nil, err
	}
	valid, err := tk.Metadata.Validate(tk.Name, params)
	if err != nil {
		return nil, err
	}
	ts, err := target.Resolve(inventory.Empty(inventory.Options{}), []string{"localhost"})
	if err != nil {
		return nil, err
	}
	if len(ts) != 1 {
		return nil, fmt.Errorf("localhost resolved to %d targets", len(ts))
	}
	t := ts[0]
	if w := RubyWarning(tk, t); w != "" && warn != nil {
		warn(w)
	}
	tr := &action.TaskRun{Task: tk, Index: tasks, Params: valid, Secrets: tk.Metadata.SensitiveValues(valid)}
	res := r.Task(ctx, t, tr, action.Options{})
	if !res.OK() {
		return nil, fmt.Errorf("failed on localhost: %s", res.Error.Msg)
	}
	return res.Value, nil
}
