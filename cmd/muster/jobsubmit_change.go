package main

// jobsubmit_change.go: the flags of change-driven continuous jobs.

import (
	"encoding/json"
	"strings"

	"github.com/spf13/pflag"

	"github.com/muster-run/muster"
	"github.com/muster-run/muster/internal/api"
)

// changeFlags are job submit's change-driven flags.
type changeFlags struct {
	fingerprint     string
	onChange        string
	onChangeParams  string
	factsUsed       []string
	dependsOnResult string
}

func (cf *changeFlags) add(fl *pflag.FlagSet) {
	fl.StringVar(&cf.fingerprint, "fingerprint", "", "with --continuous: fingerprint each node's result: stdout, json:FIELD "+
		"(a dotted field of a task's result) or file:PATH (the sha256 of a file on the target, read after the run)")
	fl.StringVar(&cf.onChange, "on-change", "", "with --fingerprint: enqueue for a node whose result changed (the first "+
		"result counts): command:CMD, task:NAME (parameters with --on-change-params) or agent-run (the node's agent runs now)")
	fl.StringVar(&cf.onChangeParams, "on-change-params", "", "the --on-change task's parameters, as a JSON object")
	fl.StringSliceVar(&cf.factsUsed, "facts-used", nil, "with --continuous: facts the result depends on (os.release,networking.ip); "+
		"when one changes for a node, its waiting run moves to the front")
	fl.StringVar(&cf.dependsOnResult, "depends-on-result", "", "with --continuous: a job id whose result changing on any node "+
		"moves this job's waiting runs to the front")
}

// apply checks the flags and sets them on req.
func (cf *changeFlags) apply(req *api.SubmitRequest) error {
	if cf.fingerprint == "" && cf.onChange == "" && len(cf.factsUsed) == 0 && cf.dependsOnResult == "" {
		if cf.onChangeParams != "" {
			return usagef("--on-change-params: give the task with --on-change task:NAME")
		}
		return nil
	}
	if !req.Continuous {
		return usagef("--fingerprint, --on-change, --facts-used and --depends-on-result need --continuous")
	}
	if cf.fingerprint != "" {
		if _, err := muster.ParseFingerprint(cf.fingerprint); err != nil {
			return usagef("--%v", err)
		}
	}
	req.Fingerprint = cf.fingerprint
	oc, err := cf.action()
	if err != nil {
		return err
	}
	if oc != nil && cf.fingerprint == "" {
		return usagef("--on-change needs --fingerprint, which says what a change is")
	}
	req.OnChange = oc
	for _, f := range cf.factsUsed {
		if f = strings.TrimSpace(f); f != "" {
			req.FactsUsed = append(req.FactsUsed, f)
		}
	}
	if cf.dependsOnResult != "" {
		id, err := jobID(strings.TrimSpace(cf.dependsOnResult))
		if err != nil {
			return usagef("--depends-on-result %q: want a job id such as 12", cf.dependsOnResult)
		}
		req.DependsOnResult = id
	}
	return nil
}

// action reads --on-change and --on-change-params.
func (cf *changeFlags) action() (*api.OnChangeRequest, error) {
	if cf.onChange == "" {
		if cf.onChangeParams != "" {
			return nil, usagef("--on-change-params: give the task with --on-change task:NAME")
		}
		return nil, nil
	}
	kind, arg, _ := strings.Cut(cf.onChange, ":")
	oc := &api.OnChangeRequest{Kind: kind}
	switch {
	case kind == api.OnChangeAgentRun && arg == "":
	case kind == api.OnChangeCommand && strings.TrimSpace(arg) != "":
		oc.Spec.Command = arg
	case kind == api.OnChangeTask && strings.TrimSpace(arg) != "":
		oc.Spec.Task = arg
		if cf.onChangeParams != "" {
			if err := json.Unmarshal([]byte(cf.onChangeParams), &oc.Spec.Params); err != nil || oc.Spec.Params == nil {
				return nil, usagef("--on-change-params: want a JSON object, such as '{\"name\":\"app\"}'")
			}
		}
	default:
		return nil, usagef("--on-change %q: want command:CMD, task:NAME or agent-run", cf.onChange)
	}
	if kind != api.OnChangeTask && cf.onChangeParams != "" {
		return nil, usagef("--on-change-params is for --on-change task:NAME")
	}
	return oc, nil
}
