package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/muster-run/muster"
	"github.com/muster-run/muster/internal/project"
	"github.com/muster-run/muster/internal/puppet"
)

// rerunFile is where every run records its targets and their statuses,
// as Bolt's .rerun.json: [{"target": "web1", "status": "success"}, ...].
const rerunFile = ".rerun.json"

// rerunHelp is the --rerun paragraph of the help of every command that
// takes it.
const rerunHelp = `Every run records its targets and whether each succeeded in .rerun.json
in the project directory, as Bolt does (when the project directory has no
muster-project.yaml or bolt-project.yaml, the file is kept in
$XDG_STATE_HOME/muster, else ~/.local/state/muster, instead).
--rerun failure acts on the targets that failed last time, --rerun
success on those that succeeded, --rerun all on all of them, in place of
-t. --no-save-rerun leaves the file as it is.`

// rerunEntry is one line of .rerun.json.
type rerunEntry struct {
	Target string `json:"target"`
	Status string `json:"status"`
}

// rerunPath is the .rerun.json of this invocation: in the project
// directory when it holds a project file, else in the user's state
// directory, so that runs from any directory (or --project directory
// without a project file) can be rerun without writing there.
func (a *app) rerunPath() (string, error) {
	dir, err := a.projectDir()
	if err != nil {
		return "", err
	}
	for _, m := range project.Markers {
		if _, err := os.Stat(filepath.Join(dir, m)); err == nil {
			return filepath.Join(dir, rerunFile), nil
		}
	}
	state := os.Getenv("XDG_STATE_HOME")
	if state == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("no project file in %s and no home directory for .rerun.json: %w", dir, err)
		}
		state = filepath.Join(home, ".local", "state")
	}
	return filepath.Join(state, "muster", rerunFile), nil
}

// applyRerun replaces -t with the targets --rerun selects from
// .rerun.json. It returns the number of targets selected (-1 without
// --rerun). Like Bolt, it refuses --rerun together with -t.
func (a *app) applyRerun() (int, error) {
	filter := a.flags.rerun
	if filter == "" {
		return -1, nil
	}
	switch filter {
	case "failure", "success", "all":
	default:
		return 0, usagef("--rerun %q: use failure, success or all", filter)
	}
	if len(a.flags.targets) > 0 {
		return 0, usagef("only one targeting option can be specified: '--targets' or '--rerun' (got both)")
	}
	path, err := a.rerunPath()
	if err != nil {
		return 0, inputError{err}
	}
	entries, err := readRerun(path)
	if err != nil {
		return 0, err
	}
	var names []string
	for _, e := range entries {
		if filter == "all" || e.Status == filter {
			names = append(names, e.Target)
		}
	}
	a.debugf("--rerun %s: %d of the %d targets in %s", filter, len(names), len(entries), path)
	a.flags.targets = names
	return len(names), nil
}

// readRerun reads and checks a .rerun.json.
func readRerun(path string) ([]rerunEntry, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, inputError{fmt.Errorf("--rerun: no %s at %s: no run has been recorded there yet (runs record it unless --no-save-rerun; use -t for this run)", rerunFile, path)}
	}
	if err != nil {
		return nil, inputError{fmt.Errorf("--rerun: cannot read %s: %w", path, errors.Unwrap(err))}
	}
	var raw []map[string]any
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, inputError{fmt.Errorf("--rerun: %s is not a list of {\"target\", \"status\"} entries: %v", path, err)}
	}
	out := make([]rerunEntry, 0, len(raw))
	for i, r := range raw {
		t, _ := r["target"].(string)
		s, _ := r["status"].(string)
		if t == "" || (s != muster.StatusSuccess && s != muster.StatusFailure) {
			return nil, inputError{fmt.Errorf("--rerun: %s: entry %d needs a \"target\" name and a \"status\" of success or failure", path, i+1)}
		}
		out = append(out, rerunEntry{Target: t, Status: s})
	}
	return out, nil
}

// saveRerun records results in .rerun.json, unless --no-save-rerun. A
// failure to write is a warning: the run itself is done.
func (a *app) saveRerun(results []*muster.Result) {
	if a.flags.noSaveRerun {
		return
	}
	path, err := a.rerunPath()
	if err == nil {
		entries := make([]rerunEntry, len(results))
		for i, r := range results {
			entries[i] = rerunEntry{Target: r.Target, Status: r.Status()}
		}
		err = writeRerun(path, entries)
	}
	if err != nil {
		a.warnf("could not save the run's targets for --rerun: %v", err)
	}
}

// forgetRerun removes .rerun.json after a plan that returned no result
// set, as Bolt does, so a later --rerun does not act on an older run.
func (a *app) forgetRerun() {
	if a.flags.noSaveRerun {
		return
	}
	path, err := a.rerunPath()
	if err == nil {
		err = os.Remove(path)
	}
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		a.warnf("could not remove %s: %v", path, err)
	}
}

// writeRerun replaces path atomically.
func writeRerun(path string, entries []rerunEntry) error {
	b, err := json.Marshal(entries)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), rerunFile+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// planResults finds the result set of a plan's outcome, as Bolt's rerun
// does: the plan's return value when it is a ResultSet, or the result set
// of the step that failed it. ok is false when there is none.
func planResults(ret any, err error) (results []*muster.Result, ok bool) {
	if err != nil {
		var me *muster.Error
		if errors.As(err, &me) {
			if rs, isSet := me.Details["result_set"].([]*muster.Result); isSet {
				return rs, true
			}
		}
		return nil, false
	}
	switch v := ret.(type) {
	case *puppet.ResultSet:
		return v.Results(), true
	case []*muster.Result:
		return v, true
	case []any: // a returned ResultSet, as plan data
		for _, x := range v {
			r, isResult := x.(*muster.Result)
			if !isResult {
				return nil, false
			}
			results = append(results, r)
		}
		return results, len(results) > 0
	}
	return nil, false
}

// savePlanRerun records a plan's result set in .rerun.json, or removes
// the file when the plan returned none, as Bolt does.
func (a *app) savePlanRerun(ret any, err error) {
	if muster.KindOf(err) == muster.KindInvalid {
		return // the plan was refused before it ran
	}
	if results, ok := planResults(ret, err); ok {
		a.saveRerun(results)
		return
	}
	a.forgetRerun()
}
