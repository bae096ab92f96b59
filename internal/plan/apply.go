package plan

import (
	"fmt"

	"go.starlark.net/starlark"

	"github.com/muster-run/muster"
	"github.com/muster-run/muster/internal/puppet"
)

// The Puppet steps: a YAML plan's resources step and Starlark's apply
// and apply_prep, carried out by a Runner that is also an Applier.

// applier returns the Runner's Applier, or an error naming what needs it.
func (rs *runState) applier(what string) (Applier, error) {
	ap, ok := rs.r.(Applier)
	if !ok {
		return nil, muster.Errorf(muster.KindInvalid, "%s needs Puppet on the targets, and this plan runner cannot apply Puppet code", what)
	}
	return ap, nil
}

// applyResources applies a resources list on targets: Bolt's resources
// step, whose value is a ResultSet of ApplyResults. The list is checked
// (a Checker builds its manifest) before the step starts.
func (rs *runState) applyResources(targets []*muster.Target, resources any, o StepOptions, catch bool) (*puppet.ResultSet, error) {
	ap, err := rs.applier("a resources step")
	if err != nil {
		return nil, err
	}
	resources = puppet.ToData(resources)
	return rs.act("apply", "", map[string]any{"resources": resources}, targets, o, catch, func(o StepOptions) ([]*muster.Result, error) {
		return ap.ApplyResources(rs.ctx, targets, resources, o)
	})
}

// applyPrep is apply_prep: Puppet must run on every target (and, with
// install, is installed where it is missing).
func (rs *runState) applyPrep(targets []*muster.Target, install bool, o StepOptions, catch bool) (*puppet.ResultSet, error) {
	ap, err := rs.applier("apply_prep")
	if err != nil {
		return nil, err
	}
	return rs.act("apply_prep", "", nil, targets, o, catch, func(o StepOptions) ([]*muster.Result, error) {
		return ap.ApplyPrep(rs.ctx, targets, install, o)
	})
}

// starApply implements apply(targets, resources, noop=False, ...) (a
// list of resource declarations as in a YAML resources step, applied with
// Puppet on the targets) and apply_prep(targets, install=False, ...),
// each with the step keywords catch_errors, run_as, description and the
// batch keys. Both return a ResultSet.
func starApply(t *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	rs, err := threadState(t, b.Name())
	if err != nil {
		return nil, err
	}
	var k stepKwargs
	var targets starlark.Value
	var resources *starlark.List
	var install bool
	if b.Name() == "apply" {
		err = starlark.UnpackArgs(b.Name(), args, kwargs, append([]any{"targets", &targets, "resources", &resources}, k.pairs()...)...)
	} else {
		err = starlark.UnpackArgs(b.Name(), args, kwargs, "targets", &targets, "install?", &install, "catch_errors?", &k.catch,
			"run_as?", &k.runAs, "description?", &k.description, "batch?", &k.batch, "canary?", &k.canary,
			"max_failures?", &k.maxFailures, "pause?", &k.pause)
	}
	if err != nil {
		return nil, err
	}
	o, err := k.options()
	if err != nil {
		return nil, err
	}
	ts, err := starTargets(rs, targets)
	if err != nil {
		return nil, err
	}
	var set *puppet.ResultSet
	if b.Name() == "apply" {
		list, err := fromStar(resources)
		if err != nil {
			return nil, fmt.Errorf("apply: resources: %v", err)
		}
		set, err = rs.applyResources(ts, list, o, k.catch)
		if err != nil {
			return nil, err
		}
	} else if set, err = rs.applyPrep(ts, install, o, k.catch); err != nil {
		return nil, err
	}
	return &starResultSet{set}, nil
}
