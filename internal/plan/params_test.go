package plan

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/muster-run/muster"
)

// paramPlans loads the same parameters as a YAML and a Starlark plan.
func paramPlans(t *testing.T) map[string]*Plan {
	t.Helper()
	dir := t.TempDir()
	files := map[string]string{
		"p.yaml": `parameters:
  targets: {type: TargetSpec}
  version: {type: String}
  count: {type: "Integer[1, 10]", default: 2}
  tags: {type: "Optional[Array[String]]"}
steps:
  - message: "version ${version}"
return:
  version: $version
  count: $count
  tags: $tags
`,
		"p.star": `PARAMS = {
    "targets": "TargetSpec",
    "version": "String",
    "count": {"type": "Integer[1, 10]", "default": 2},
    "tags": "Optional[Array[String]]",
}

def main(targets, version, count, tags):
    out.message("version " + version)
    return {"version": version, "count": count, "tags": tags}
`,
	}
	plans := map[string]*Plan{}
	for file, src := range files {
		path := filepath.Join(dir, file)
		if err := os.WriteFile(path, []byte(src), 0o600); err != nil {
			t.Fatal(err)
		}
		p, err := LoadFile("demo::p", path)
		if err != nil {
			t.Fatal(err)
		}
		plans[p.Kind] = p
	}
	return plans
}

// sameProblems compares validation errors whose problem lines may come in
// another order (Starlark plans declare parameters in a dict).
func sameProblems(got, want string) bool {
	g, w := strings.Split(got, "\n"), strings.Split(want, "\n")
	sort.Strings(g[1:])
	sort.Strings(w[1:])
	return slices.Equal(g, w)
}

// TestPlanCLIParams: k=v values are read against the plan's declared types,
// as for tasks, by YAML and Starlark plans alike; `muster plan run` passes
// them to Run.
func TestPlanCLIParams(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want map[string]any // the plan's return value
		err  string         // Run's error
	}{
		{"a version that looks like a number stays a string", []string{"targets=t1", "version=1.0"},
			map[string]any{"version": "1.0", "count": float64(2), "tags": nil}, ""},
		{"typed values are JSON", []string{"targets=t1", "version=2", "count=5", `tags=["a","b"]`},
			map[string]any{"version": "2", "count": float64(5), "tags": []any{"a", "b"}}, ""},
		{"JSON string", []string{"targets=t1", `version="3.0"`}, map[string]any{"version": "3.0", "count": float64(2), "tags": nil}, ""},
		{"every problem at once", []string{"version=1.0", "count=20", "tags=[1]", "bogus=1"}, nil,
			`invalid parameters for plan demo::p (4 problems):
  - unknown parameter "bogus"
  - parameter "targets" is required (TargetSpec)
  - parameter "count": expects an Integer[1, 10] value, got Integer (out of range)
  - parameter "tags": expects an Array[String] value, got String`},
	}
	for kind, p := range paramPlans(t) {
		for _, tc := range tests {
			t.Run(kind+"/"+tc.name, func(t *testing.T) {
				params, err := p.ParseCLIParams(tc.args, "", nil)
				if err != nil {
					t.Fatal(err)
				}
				v, err := p.Run(context.Background(), newFake(), params, Options{})
				if tc.err != "" {
					if err == nil || !sameProblems(err.Error(), tc.err) || muster.KindOf(err) != muster.KindInvalid {
						t.Fatalf("error = %v (kind %q), want:\n%s", err, muster.KindOf(err), tc.err)
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				if d := cmp.Diff(tc.want, asJSON(t, v)); d != "" {
					t.Errorf("(-want +got):\n%s", d)
				}
			})
		}
	}
}

// TestPlanValidate: parameters are checked without running the plan (the
// server does it when a plan job is submitted).
func TestPlanValidate(t *testing.T) {
	tests := []struct {
		name   string
		params map[string]any
		err    string
	}{
		{"valid", map[string]any{"targets": "t1", "version": "1.0"}, ""},
		{"valid from JSON", map[string]any{"targets": []any{"t1", "t2"}, "version": "1.0", "count": float64(3), "tags": []any{"x"}}, ""},
		{"unknown, missing and mistyped", map[string]any{"bogus": 1, "cuont": 3, "count": "x"},
			`invalid parameters for plan demo::p (5 problems):
  - unknown parameter "bogus"
  - unknown parameter "cuont" (did you mean "count"?)
  - parameter "targets" is required (TargetSpec)
  - parameter "version" is required (String)
  - parameter "count": expects an Integer[1, 10] value, got String`},
		{"out of range", map[string]any{"targets": "t1", "version": "1", "count": 11},
			`invalid parameters for plan demo::p (1 problem):
  - parameter "count": expects an Integer[1, 10] value, got Integer (out of range)`},
	}
	for kind, p := range paramPlans(t) {
		for _, tc := range tests {
			t.Run(kind+"/"+tc.name, func(t *testing.T) {
				f := newFake()
				err := p.Validate(tc.params)
				if len(f.calls)+len(f.messages) != 0 {
					t.Errorf("Validate ran the plan: %v %v", f.calls, f.messages)
				}
				if tc.err == "" {
					if err != nil {
						t.Fatal(err)
					}
					return
				}
				if err == nil || !sameProblems(err.Error(), tc.err) || muster.KindOf(err) != muster.KindInvalid {
					t.Fatalf("error = %v (kind %q), want:\n%s", err, muster.KindOf(err), tc.err)
				}
			})
		}
	}
	broken := &Plan{Name: "demo::broken", Err: &LoadError{File: "broken.yaml", Line: 3, Msg: "unknown key \"stpes\""}}
	if err := broken.Validate(nil); err == nil || !strings.Contains(err.Error(), "broken.yaml:3") {
		t.Errorf("broken plan: %v", err)
	}
}

// TestTargetSpecsWhole: a plan hands TargetSpec strings to the Runner
// whole, so that "web{1,2}" is not cut at its comma.
func TestTargetSpecsWhole(t *testing.T) {
	tests := []struct {
		targets any
		want    []string
	}{
		{"t1,t2", []string{"t1,t2"}},
		{"web{1,2}", []string{"web{1,2}"}},
		{" web[1,2], db ", []string{"web[1,2], db"}},
		{[]any{"a", "b{1,2}"}, []string{"a", "b{1,2}"}},
	}
	for _, tc := range tests {
		f := newFake()
		if _, err := runPlan(t, "demo::sub::inner", f, map[string]any{"targets": tc.targets, "greeting": "hi"}); err != nil {
			t.Fatalf("%v: %v", tc.targets, err)
		}
		if d := cmp.Diff(tc.want, f.specs); d != "" {
			t.Errorf("%v: specs (-want +got):\n%s", tc.targets, d)
		}
	}
}
