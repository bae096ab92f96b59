package boltcompat

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/muster-run/muster"
	"github.com/muster-run/muster/internal/engine"
	"github.com/muster-run/muster/internal/plan"
)

// planCase is testdata/plans/<case>/expect.json: runs of plans of the
// case's project, each with what Bolt's documentation says it does.
type planCase struct {
	Doc string `json:"doc"`
	// NeedPuppet: the case applies Puppet code (skipped without puppet
	// unless MUSTER_TEST_REQUIRE_PUPPET is set).
	NeedPuppet bool      `json:"need_puppet"`
	Runs       []planRun `json:"runs"`
}

type planRun struct {
	Plan    string         `json:"plan"`
	Params  map[string]any `json:"params"`
	Verbose bool           `json:"verbose"`
	// Result is compared with the plan's return value (see subset).
	Result any `json:"result"`
	// Error: the plan must fail with this kind ("*": any), these in its
	// message, and these details (file by base name).
	Error *struct {
		Kind    string         `json:"kind"`
		Msg     []string       `json:"msg"`
		Details map[string]any `json:"details"`
	} `json:"error"`
	// Output must hold each of these; NoOutput none of them. The output
	// is what `muster plan run` prints (step lines and messages).
	Output   []string `json:"output"`
	NoOutput []string `json:"no_output"`
	// Files must exist afterwards, relative to the case's copy, with
	// this content.
	Files map[string]string `json:"files"`
	// Absent must not exist afterwards (relative to the case's copy).
	Absent []string `json:"absent"`
}

// TestPlans runs every case under testdata/plans through the engine's
// plan runner with muster's real local transport, as `muster plan run`
// does: parameters are checked before "Starting: plan", and the output,
// return value or error, and the files on the "target" are compared.
func TestPlans(t *testing.T) {
	for _, name := range caseNames(t, "plans") {
		t.Run(name, func(t *testing.T) {
			dir := copyCase(t, filepath.Join("plans", name))
			var tc planCase
			readJSON(t, filepath.Join(dir, "expect.json"), &tc)
			if tc.NeedPuppet {
				needPuppet(t)
			}
			for i, r := range tc.Runs {
				ret, out, err := runPlan(t, dir, r.Plan, r.Params, r.Verbose)
				what := r.Plan
				if len(tc.Runs) > 1 {
					what = r.Plan + " (run " + string(rune('1'+i)) + ")"
				}
				if r.Error != nil {
					if err == nil {
						t.Fatalf("%s returned %s, want an error with %q\n%s", what, short(ret), r.Error.Msg, out)
					}
					me := muster.AsError(err, "")
					if r.Error.Kind != "*" && me.Kind != r.Error.Kind {
						t.Errorf("%s: error kind %q, want %q (%v)", what, me.Kind, r.Error.Kind, err)
					}
					containsAll(t, what+" error", err.Error(), r.Error.Msg)
					checkDetails(t, err, r.Error.Details)
				} else if err != nil {
					t.Fatalf("%s: %v\n%s", what, err, out)
				} else {
					checkSubset(t, what+" return", r.Result, ret)
				}
				containsAll(t, what+" output", out, r.Output)
				containsNone(t, what+" output", out, r.NoOutput)
				for p, want := range r.Files {
					b, err := os.ReadFile(filepath.Join(dir, p))
					if err != nil || string(b) != want {
						t.Errorf("%s: file %s = %q (%v), want %q", what, p, b, err, want)
					}
				}
				for _, p := range r.Absent {
					if _, err := os.Stat(filepath.Join(dir, p)); err == nil {
						t.Errorf("%s: %s exists, and must not", what, p)
					}
				}
			}
		})
	}
}

// runPlan runs plan name of the project in dir on this machine, as `muster
// plan run` does, and returns its value, its error and what it printed.
func runPlan(t *testing.T, dir, name string, params map[string]any, verbose bool) (any, string, error) {
	t.Helper()
	var out syncBuffer
	p := loadProject(t, dir, func(f string, a ...any) {})
	pl, err := p.Plans.Get(name)
	if err != nil {
		return nil, "", err
	}
	pr := &engine.PlanRunner{Inventory: p.Inventory, Tasks: p.Tasks, Runner: localRunner(t), Dir: dir, Out: &out}
	if params == nil {
		params = map[string]any{}
	}
	// As the CLI: everything that can be checked is, before "Starting".
	if err := pl.Validate(params); err != nil {
		return nil, out.String(), err
	}
	ctx := context.Background()
	pr.Say("Starting: plan %s", pl.Name)
	ret, err := pl.Run(ctx, pr, params, plan.Options{Index: p.Plans, Verbose: verbose})
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	pr.Cleanup(cctx)
	cancel()
	var le *plan.LoadError
	if err == nil || !errors.As(err, &le) {
		pr.Say("Finished: plan %s", pl.Name)
	}
	return ret, out.String(), err
}

// needPuppet skips a test when puppet is not installed, unless
// MUSTER_TEST_REQUIRE_PUPPET is set (CI installs it: scripts/test.sh).
func needPuppet(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("puppet"); err != nil {
		if os.Getenv("MUSTER_TEST_REQUIRE_PUPPET") != "" {
			t.Fatalf("puppet is not installed, and MUSTER_TEST_REQUIRE_PUPPET is set: %v", err)
		}
		t.Skip("puppet is not installed (Debian's puppet package); set MUSTER_TEST_REQUIRE_PUPPET to make this a failure")
	}
}
