package plan

import (
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/muster-run/muster"
	"github.com/muster-run/muster/internal/puppet"
	"github.com/muster-run/muster/internal/task"
)

// Error kinds raised by plans.
const (
	KindRunFailure  = "muster/run-failure"
	KindPlanFailure = "muster/plan-failure"
)

// Options control one plan run.
type Options struct {
	// Concurrency bounds parallelize; 0 means 100.
	Concurrency int
	// Index resolves run_plan and plan steps; nil forbids nested plans.
	Index *Index
	// Batch is the plan-level rolling execution: it is the batch of every
	// action step that does not set its own.
	Batch Batch
	// Verbose shows what verbose steps and out::verbose (out.verbose in
	// Starlark) say; without it they print nothing, as in Bolt, where
	// they are shown only with --verbose.
	Verbose bool
}

// runState is what one plan execution (and its nested plans) shares.
type runState struct {
	ctx   context.Context
	r     Runner
	o     Options
	stack []string
	runAs string
}

// Run validates params against the plan's parameters (applying defaults,
// reporting every problem at once, before any step) and runs the plan.
// The return value is plain JSON-able data (see ToData). A failure is a
// *muster.Error: muster/run-failure, muster/plan-failure (or the kind
// given to fail_plan), muster/evaluation-error or muster/invalid-input.
func (p *Plan) Run(ctx context.Context, r Runner, params map[string]any, o Options) (any, error) {
	if o.Concurrency <= 0 {
		o.Concurrency = 100
	}
	rs := &runState{ctx: ctx, r: r, o: o}
	v, err := rs.runPlan(p, params)
	if err != nil {
		return nil, err
	}
	return puppet.ToData(v), nil
}

func (rs *runState) runPlan(p *Plan, params map[string]any) (any, error) {
	if p.Err != nil {
		return nil, p.Err
	}
	for _, name := range rs.stack {
		if name == p.Name {
			return nil, muster.Errorf(muster.KindInvalid, "plan %s calls itself (%s -> %s)", p.Name, strings.Join(rs.stack, " -> "), p.Name)
		}
	}
	if len(rs.stack) >= 50 {
		return nil, muster.Errorf(muster.KindInvalid, "plans nested more than 50 deep")
	}
	vals, err := p.validate(params)
	if err != nil {
		return nil, err
	}
	child := *rs
	child.stack = append(append([]string{}, rs.stack...), p.Name)
	if child.o.Batch.IsZero() {
		child.o.Batch = p.Batch // the plan's own batch keys, below the command line's
	}
	if p.star != nil {
		return child.runStarlark(p, vals)
	}
	return child.runYAML(p, vals)
}

// say hands a plan message to the Runner; a verbose one only when the
// run is verbose.
func (rs *runState) say(text string, verbose bool) {
	if verbose && !rs.o.Verbose {
		return
	}
	rs.r.Message(text)
}

func (rs *runState) runNamed(name string, params map[string]any) (any, error) {
	if rs.o.Index == nil {
		return nil, muster.Errorf(muster.KindInvalid, "cannot run plan %s: no plan index available", name)
	}
	p, err := rs.o.Index.Get(name)
	if err != nil {
		return nil, err
	}
	return rs.runPlan(p, params)
}

// ParseCLIParams builds the plan's parameters from `k=v` arguments or from
// the --params flag (paramsFlag: inline JSON, @file or "-" for stdin),
// exactly as task.ParseCLIParams does for a task, typed by the plan's
// declared parameters: a k=v value is parsed as JSON first and kept as
// written when the JSON does not fit the declared type (so version=1.0
// for a String parameter is "1.0"). It checks nothing else: Validate or
// Run does.
func (p *Plan) ParseCLIParams(args []string, paramsFlag string, stdin io.Reader) (map[string]any, error) {
	types := make(map[string]puppet.Type, len(p.Parameters))
	for _, prm := range p.Parameters {
		types[prm.Name] = prm.Type
	}
	return task.ParseCLIParamsTyped(args, paramsFlag, stdin, func(name string) puppet.Type { return types[name] })
}

// Validate checks params against the plan's declared parameters without
// running anything, exactly as Run does before the first step: unknown
// names, missing required parameters (after defaults) and type
// mismatches, every problem at once in one muster/invalid-input error
// ("invalid parameters for plan NAME (N problems): ..."). A plan that
// failed to load returns its *LoadError.
func (p *Plan) Validate(params map[string]any) error {
	if p.Err != nil {
		return p.Err
	}
	_, err := p.validate(params)
	return err
}

// validate applies defaults and checks every parameter.
func (p *Plan) validate(params map[string]any) (map[string]any, error) {
	out := map[string]any{}
	var problems []string
	declared := map[string]*Param{}
	for _, prm := range p.Parameters {
		declared[prm.Name] = prm
	}
	for _, k := range slices.Sorted(maps.Keys(params)) {
		if declared[k] == nil {
			msg := fmt.Sprintf("unknown parameter %q", k)
			if best := puppet.Closest(k, slices.Sorted(maps.Keys(declared))); best != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", best)
			}
			problems = append(problems, msg)
		}
	}
	for _, prm := range p.Parameters {
		v, ok := params[prm.Name]
		v = puppet.Normalize(v)
		if (!ok || v == nil) && prm.HasDefault {
			v, ok = prm.Default, true
		}
		if !ok {
			if prm.Required() {
				problems = append(problems, fmt.Sprintf("parameter %q is required (%s)", prm.Name, prm.Type))
			}
			out[prm.Name] = nil
			continue
		}
		if err := checkType(prm, v); err != nil {
			problems = append(problems, fmt.Sprintf("parameter %q: %v", prm.Name, err))
		}
		out[prm.Name] = v
	}
	if len(problems) > 0 {
		n := "1 problem"
		if len(problems) > 1 {
			n = fmt.Sprintf("%d problems", len(problems))
		}
		return nil, muster.Errorf(muster.KindInvalid, "invalid parameters for plan %s (%s):\n  - %s", p.Name, n, strings.Join(problems, "\n  - "))
	}
	return out, nil
}

// checkType checks v against the parameter's type. Targets and result
// sets are accepted wherever a TargetSpec is.
func checkType(prm *Param, v any) error {
	if strings.Contains(prm.Type.String(), "TargetSpec") && targetish(v) {
		return nil
	}
	return prm.Type.Check(puppet.ToData(v))
}

func targetish(v any) bool {
	switch x := v.(type) {
	case *muster.Target, *puppet.ResultSet, *puppet.Result:
		return true
	case []any:
		for _, e := range x {
			if _, ok := e.(string); !ok && !targetish(e) {
				return false
			}
		}
		return len(x) > 0
	}
	return false
}

// resolve turns TargetSpec-like values (strings, Targets, arrays, result
// sets) into targets, deduplicated by name.
func (rs *runState) resolve(vals []any) ([]*muster.Target, error) {
	var specs []string
	var direct []*muster.Target
	var walk func(v any) error
	walk = func(v any) error {
		switch x := v.(type) {
		case nil:
		case string:
			// Whole: the Runner splits specs, minding "{a,b}" and "[,]".
			if s := strings.TrimSpace(x); s != "" {
				specs = append(specs, s)
			}
		case *muster.Target:
			direct = append(direct, x)
		case *puppet.Result:
			direct = append(direct, x.Target)
		case *puppet.ResultSet:
			for _, r := range x.Items {
				direct = append(direct, r.Target)
			}
		case []any:
			for _, e := range x {
				if err := walk(e); err != nil {
					return err
				}
			}
		case []*muster.Target:
			direct = append(direct, x...)
		default:
			return fmt.Errorf("expected targets, got %s", puppet.TypeName(v))
		}
		return nil
	}
	for _, v := range vals {
		if err := walk(v); err != nil {
			return nil, err
		}
	}
	if len(specs) > 0 {
		ts, err := rs.r.ResolveTargets(specs)
		if err != nil {
			return nil, err
		}
		direct = append(direct, ts...)
	}
	seen := map[string]bool{}
	out := []*muster.Target{}
	for _, t := range direct {
		if !seen[t.Name] {
			seen[t.Name] = true
			out = append(out, t)
		}
	}
	return out, nil
}

// act runs one action on targets, reporting progress, and raises a
// run failure when a target fails and catch is false.
// params are a task's parameters (nil for other actions), for the
// Runner's Checker.
func (rs *runState) act(action, object string, params map[string]any, targets []*muster.Target, o StepOptions, catch bool,
	fn func(StepOptions) ([]*muster.Result, error)) (*puppet.ResultSet, error) {
	if err := rs.ctx.Err(); err != nil {
		return nil, muster.AsError(err, muster.KindCancelled)
	}
	if o.RunAs == "" {
		o.RunAs = rs.runAs
	}
	if o.Batch.IsZero() {
		o.Batch = rs.o.Batch
	}
	if c, ok := rs.r.(Checker); ok {
		// Before anything is printed: a step that cannot start never
		// says "Starting" (nor, later, "Finished").
		if err := c.CheckStep(action, object, params, o); err != nil {
			return nil, muster.AsError(err, muster.KindInvalid)
		}
	}
	if len(targets) == 0 {
		return &puppet.ResultSet{}, nil
	}
	desc := o.Description
	switch {
	case desc != "":
	case object == "": // apply, apply_prep: "apply", "apply prep"
		desc = strings.ReplaceAll(action, "_", " ")
	default:
		desc = stepDescription(action, object)
	}
	rs.r.StepStarted(desc, targets)
	start := time.Now()
	results, err := fn(o)
	if err != nil {
		// The step could not start (a missing script or task, bad
		// parameters): it did not finish, so say nothing of failures.
		return nil, muster.AsError(err, muster.KindInvalid)
	}
	rs.r.StepFinished(desc, results, time.Since(start))
	set := puppet.NewResultSet(results, targets)
	if !catch && !set.OK() {
		return set, runFailure(action, object, set)
	}
	return set, nil
}

// stepDescription is how Bolt's executor names a step in its "Starting:"
// and "Finished:" lines: "command 'uptime'", "script m/scripts/x.sh",
// "task m::t". Uploads and downloads are named with their destination
// (transferDescription) where the step is built.
func stepDescription(action, object string) string {
	switch action {
	case "run_script":
		return "script " + object
	case "run_task":
		return "task " + object
	}
	return fmt.Sprintf("%s '%s'", strings.TrimPrefix(action, "run_"), object)
}

// transferDescription is Bolt's name of an upload or download step: "file
// upload from SRC to DEST", "file download from SRC to DEST".
func transferDescription(action, src, dest string) string {
	if action == "download_file" {
		return fmt.Sprintf("file download from %s to %s", src, dest)
	}
	return fmt.Sprintf("file upload from %s to %s", src, dest)
}

// runFailure is Bolt's RunFailure.
func runFailure(action, object string, set *puppet.ResultSet) *muster.Error {
	n := len(set.Subset(false).Items)
	s := "s"
	if n == 1 {
		s = ""
	}
	what := fmt.Sprintf("%s '%s'", action, object)
	if object == "" {
		what = action
	}
	return &muster.Error{Kind: KindRunFailure, Msg: fmt.Sprintf("%s failed on %d target%s", what, n, s),
		Details: map[string]any{"action": action, "object": object, "result_set": set.Results()}}
}

// applyBatchKey sets one rolling-execution option from a plan value:
// batch (N or "N%"), canary (N), max_failures (N or "N%"), pause
// (a duration like "30s", or seconds).
func applyBatchKey(b *Batch, key string, v any) error {
	switch key {
	case "batch", "max_failures":
		n, pct, err := countOrPercent(v)
		if err != nil {
			return err
		}
		if key == "batch" {
			b.Size, b.Percent = n, pct
		} else {
			b.MaxFailures, b.MaxFailuresPercent, b.MaxFailuresSet = n, pct, true
		}
	case "canary":
		n, ok := puppet.ToInt(v)
		if !ok || n < 0 {
			return fmt.Errorf("expected a non-negative integer, got %s", puppet.ToString(v))
		}
		b.Canary = int(n)
	case "pause":
		if n, ok := puppet.ToNumber(v); ok && n != nil {
			if _, isStr := v.(string); !isStr {
				b.Pause = time.Duration(puppet.ToFloat(n) * float64(time.Second))
				return nil
			}
		}
		d, err := time.ParseDuration(puppet.ToString(v))
		if err != nil || d < 0 {
			return fmt.Errorf("expected a duration like 30s, got %q", puppet.ToString(v))
		}
		b.Pause = d
	}
	return nil
}

func countOrPercent(v any) (int, float64, error) {
	if s, ok := v.(string); ok && strings.HasSuffix(strings.TrimSpace(s), "%") {
		f, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(s), "%"), 64)
		if err != nil || f <= 0 || f > 100 {
			return 0, 0, fmt.Errorf("expected a percentage between 0 and 100, got %q", s)
		}
		return 0, f, nil
	}
	n, ok := puppet.ToInt(v)
	if !ok {
		if num, isNum := puppet.ToNumber(v); isNum {
			n, ok = puppet.ToInt(num)
		}
	}
	if !ok || n < 0 {
		return 0, 0, fmt.Errorf("expected a count or a percentage like 10%%, got %s", puppet.ToString(v))
	}
	return int(n), 0, nil
}
