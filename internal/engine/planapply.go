package engine

import (
	"context"

	"github.com/muster-run/muster"
	"github.com/muster-run/muster/internal/action"
	"github.com/muster-run/muster/internal/apply"
	"github.com/muster-run/muster/internal/plan"
)

var _ plan.Applier = (*PlanRunner)(nil)

// applier is the run's one apply.Applier: the module path is packed once
// per plan run and, with Keep, stays on each target for the applies that
// follow, until Cleanup.
func (p *PlanRunner) applier() *apply.Applier {
	p.applyOnce.Do(func() {
		var modules map[string]string
		if p.Tasks != nil {
			modules = p.Tasks.Modules
		}
		p.ap = &apply.Applier{Runner: p.Runner, Modules: modules, Keep: true}
	})
	return p.ap
}

// Cleanup removes what the run's applies left on targets (the module
// path they kept). Call it once the plan is done, before the action
// runner's own Cleanup; a run without applies costs nothing.
func (p *PlanRunner) Cleanup(ctx context.Context) {
	p.applyOnce.Do(func() {}) // no applier after this: none was made, or it is cleaned
	if p.ap != nil {
		p.ap.Cleanup(ctx)
	}
}

// manifest turns a resources list into Puppet code. A bad declaration is
// an invalid-input error whose message starts with its path
// ("resources[1].title: ...") and whose details hold index and field;
// the plan adds the step's file and line.
func manifest(resources any) (string, error) {
	m, err := apply.ResourcesManifest(resources)
	if err != nil {
		return "", muster.AsError(err, muster.KindInvalid)
	}
	return m, nil
}

// ApplyResources implements plan.Applier: the resources become one
// manifest, applied with puppet apply on every target (noop with
// o.Noop), each result Bolt's ApplyResult. Puppet's presence is checked
// in the same channel: a target without it fails with a clear error, so a
// resources step needs no separate apply_prep round trip.
func (p *PlanRunner) ApplyResources(ctx context.Context, targets []*muster.Target, resources any, o plan.StepOptions) ([]*muster.Result, error) {
	code, err := manifest(resources)
	if err != nil {
		return nil, err
	}
	ap := p.applier()
	return p.fan(ctx, targets, "apply", "", o, func(ctx context.Context, t *muster.Target, opts action.Options) *muster.Result {
		return ap.Apply(ctx, t, code, apply.Options{Noop: o.Noop}, opts)
	}), nil
}

// ApplyPrep implements plan.Applier with apply.Prep on every target.
func (p *PlanRunner) ApplyPrep(ctx context.Context, targets []*muster.Target, install bool, o plan.StepOptions) ([]*muster.Result, error) {
	return p.fan(ctx, targets, "apply_prep", "", o, func(ctx context.Context, t *muster.Target, opts action.Options) *muster.Result {
		return apply.Prep(ctx, p.Runner, t, install, opts)
	}), nil
}
