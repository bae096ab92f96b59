package plan

import (
	"context"
	"time"

	"github.com/muster-run/muster"
)

// Runner performs plan steps. Each method acts on all targets (already
// resolved) and returns one result per target; it never returns an error
// for a target failure (that is a failed Result), only for bad input.
type Runner interface {
	// ResolveTargets resolves target specs as target.Resolve does: each
	// spec may hold several comma-separated names, groups or globs.
	ResolveTargets(specs []string) ([]*muster.Target, error)
	RunCommand(ctx context.Context, targets []*muster.Target, command string, o StepOptions) ([]*muster.Result, error)
	RunScript(ctx context.Context, targets []*muster.Target, script string /*module path like mod/script.sh or a local path*/, args []string, o StepOptions) ([]*muster.Result, error)
	RunTask(ctx context.Context, targets []*muster.Target, task string, params map[string]any, o StepOptions) ([]*muster.Result, error)
	Upload(ctx context.Context, targets []*muster.Target, src, dest string, o StepOptions) ([]*muster.Result, error)
	Download(ctx context.Context, targets []*muster.Target, src, dest string, o StepOptions) ([]*muster.Result, error)
	WaitUntilAvailable(ctx context.Context, targets []*muster.Target, timeout time.Duration) ([]*muster.Result, error)
	// Out receives plan messages (out.message / message steps) and step progress events.
	Message(text string)
	StepStarted(desc string, targets []*muster.Target)
	StepFinished(desc string, results []*muster.Result, elapsed time.Duration)
}

// Checker is implemented by a Runner that can tell, before a step
// starts, that it cannot: its script or file is missing, its task is
// unknown or its parameters do not fit. The plan asks before the step's
// StepStarted, so such a step fails with a clear error and never prints
// "Starting" or "Finished", as in Bolt, which loads a task or finds a
// script before it runs anything.
type Checker interface {
	// CheckStep checks one step: action is run_command, run_script,
	// run_task, upload_file, download_file, wait_until_available, apply
	// or apply_prep; object the command, script, task or source; params
	// the task's parameters, or {"resources": list} for apply (nil for
	// other steps).
	CheckStep(action, object string, params map[string]any, o StepOptions) error
}

// StepOptions are the per-step options handed to a Runner.
type StepOptions struct {
	RunAs       string
	Env         map[string]string
	Noop        bool
	Description string
	Batch       Batch // rolling execution for this step; zero = all at once
}

// Batch describes rolling execution: a sliding window of Size targets (or
// Percent of them), Canary targets first, stopping new starts after
// MaxFailures (or MaxFailuresPercent) failures, with Pause between batches.
type Batch struct {
	Size               int
	Percent            float64
	Canary             int
	MaxFailures        int
	MaxFailuresPercent float64
	// MaxFailuresSet says max_failures was given; without it any number
	// of failures is tolerated.
	MaxFailuresSet bool
	Pause          time.Duration
}

// IsZero reports whether b asks for no rolling execution.
func (b Batch) IsZero() bool { return b == Batch{} }

// Applier is implemented by a Runner that applies Puppet code on targets
// with Puppet there (muster's engine, through internal/apply): a YAML
// plan's resources step, and apply and apply_prep in Starlark plans. A
// Runner without it fails those steps with a clear error.
type Applier interface {
	// ApplyResources turns a resources list (Bolt's declarations, as the
	// plan evaluated them) into a manifest and applies it on every
	// target; each result is Bolt's ApplyResult (action "apply"). An
	// error (a bad declaration, naming its index and field) means
	// nothing ran. A Checker checks the list before the step starts, as
	// CheckStep("apply", "", {"resources": list}, o).
	ApplyResources(ctx context.Context, targets []*muster.Target, resources any, o StepOptions) ([]*muster.Result, error)
	// ApplyPrep is Bolt's apply_prep: it checks that Puppet runs on each
	// target and, with install, installs the OS's package where it is
	// missing; a target without Puppet fails.
	ApplyPrep(ctx context.Context, targets []*muster.Target, install bool, o StepOptions) ([]*muster.Result, error)
}
