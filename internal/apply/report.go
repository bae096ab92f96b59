package apply

import (
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/muster-run/muster"
)

// Error kinds of an apply, as Bolt's bolt/apply-error, bolt/resource-failure
// and bolt/invalid-report.
const (
	// KindApply: Puppet is missing on the target, or it failed before it
	// applied anything (a syntax error, an unknown resource type).
	KindApply = "muster/apply-error"
	// KindResourceFailure: the catalog was applied and some resources failed.
	KindResourceFailure = "muster/resource-failure"
	// KindInvalidReport: Puppet's report could not be read.
	KindInvalidReport = "muster/invalid-report"
)

// ParseReport reads the YAML report that puppet apply writes (its
// --lastrunreport file: a Puppet::Transaction::Report in its data-hash
// form) into plain data: maps, lists, strings, numbers, booleans and nil.
// Ruby-specific tags (!ruby/object:..., !ruby/sym) are read as the
// mapping or string under them.
func ParseReport(data []byte) (map[string]any, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("reading Puppet's report: %w", err)
	}
	v, err := plain(&doc, 0)
	if err != nil {
		return nil, fmt.Errorf("reading Puppet's report: %w", err)
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("reading Puppet's report: want a mapping at the top, got %T", v)
	}
	return m, nil
}

// maxReportDepth bounds nesting (and alias chains) in a report.
const maxReportDepth = 64

func plain(n *yaml.Node, depth int) (any, error) {
	if depth > maxReportDepth {
		return nil, fmt.Errorf("line %d: nested deeper than %d levels", n.Line, maxReportDepth)
	}
	switch n.Kind {
	case yaml.DocumentNode:
		if len(n.Content) == 0 {
			return nil, nil
		}
		return plain(n.Content[0], depth+1)
	case yaml.AliasNode:
		return plain(n.Alias, depth+1)
	case yaml.SequenceNode:
		out := make([]any, 0, len(n.Content))
		for _, c := range n.Content {
			v, err := plain(c, depth+1)
			if err != nil {
				return nil, err
			}
			out = append(out, v)
		}
		return out, nil
	case yaml.MappingNode:
		out := make(map[string]any, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, err := plain(n.Content[i], depth+1)
			if err != nil {
				return nil, err
			}
			v, err := plain(n.Content[i+1], depth+1)
			if err != nil {
				return nil, err
			}
			out[fmt.Sprint(k)] = v
		}
		return out, nil
	case yaml.ScalarNode:
		if n.Tag != "" && n.Tag != "!" && !strings.HasPrefix(n.Tag, "!!") && !strings.HasPrefix(n.Tag, "tag:yaml.org,2002:") {
			return n.Value, nil // !ruby/sym and the like
		}
		var v any
		if err := n.Decode(&v); err != nil {
			return n.Value, nil //nolint:nilerr // a scalar yaml.v3 cannot type is kept as its text
		}
		if t, ok := v.(time.Time); ok {
			return t.Format(time.RFC3339Nano), nil
		}
		return v, nil
	}
	return nil, fmt.Errorf("line %d: unexpected YAML node", n.Line)
}

// Outcome is what one run of puppet apply left: its exit status and the
// streams of the script that ran it.
type Outcome struct {
	ExitCode int
	// Report is the YAML report Puppet wrote ("" when it wrote none).
	Report string
	// Log is Puppet's output (its stdout and stderr).
	Log string
}

// missingMarker starts the line the apply script prints when it finds no
// puppet command.
const missingMarker = "muster-apply: puppet not found"

// Interpret turns an apply's outcome on target into Bolt's ApplyResult:
// action "apply", value {"report": <Puppet's report>, "_output": <metrics
// summary>}, and an error when Puppet is missing (KindApply), failed
// before applying (KindApply, with its error lines), wrote an unreadable
// report (KindInvalidReport), or some resources failed
// (KindResourceFailure, naming each failed resource and its message).
// `puppet apply --detailed-exitcodes` exits 0 (no changes), 2 (changes),
// 4 (failures) or 6 (changes and failures), and 1 when it did not apply.
func Interpret(target, object string, o Outcome) *muster.Result {
	res := &muster.Result{Target: target, Action: "apply", Object: object, Value: map[string]any{}}
	if strings.Contains(o.Log, missingMarker) {
		res.Error = muster.Errorf(KindApply, "Puppet is not installed on %s, please install it to enable 'apply' (muster apply prep --install -t %s)", target, target).
			WithDetail("exit_code", o.ExitCode)
		return res
	}
	if strings.TrimSpace(o.Report) == "" {
		msg := fmt.Sprintf("puppet apply failed on %s with exit code %d before applying anything", target, o.ExitCode)
		if o.ExitCode == 126 {
			msg += " (is the temporary directory mounted noexec? set tmpdir to another directory)"
		}
		if lines := errorLines(o.Log); lines != "" {
			msg += ":\n" + lines
		}
		res.Error = muster.Errorf(KindApply, "%s", msg).WithDetail("exit_code", o.ExitCode)
		return res
	}
	report, err := ParseReport([]byte(o.Report))
	if err != nil {
		res.Error = muster.Errorf(KindInvalidReport, "%s: %v", target, err).WithDetail("exit_code", o.ExitCode)
		return res
	}
	res.Value["report"] = report
	var missing []string
	for _, k := range []string{"metrics", "resource_statuses", "status"} {
		if _, ok := report[k]; !ok {
			missing = append(missing, k)
		}
	}
	if len(missing) > 0 {
		res.Error = muster.Errorf(KindInvalidReport, "Puppet's report from %s lacks the keys %s", target, strings.Join(missing, ", ")).
			WithDetail("exit_code", o.ExitCode)
		return res
	}
	if msg, ok := metricsMessage(report); ok {
		res.Value["_output"] = msg
	}
	failed := Failed(report)
	if report["status"] == "failed" || o.ExitCode&4 != 0 || len(failed) > 0 {
		var b strings.Builder
		fmt.Fprintf(&b, "Resources failed to apply for %s", target)
		for _, name := range failed {
			st, _ := statuses(report)[name].(map[string]any)
			for _, msg := range failureMessages(st) {
				fmt.Fprintf(&b, "\n  %s: %s", name, msg)
			}
		}
		if len(failed) == 0 {
			if lines := errorLines(o.Log); lines != "" {
				b.WriteString("\n" + lines)
			}
		}
		res.Error = muster.Errorf(KindResourceFailure, "%s", b.String()).WithDetail("exit_code", o.ExitCode)
	}
	return res
}

func statuses(report map[string]any) map[string]any {
	m, _ := report["resource_statuses"].(map[string]any)
	return m
}

// Changed returns the resources ("File[/tmp/x]") the report shows as
// changed, sorted.
func Changed(report map[string]any) []string { return withFlag(report, "changed") }

// Failed returns the resources the report shows as failed, sorted.
func Failed(report map[string]any) []string { return withFlag(report, "failed") }

func withFlag(report map[string]any, flag string) []string {
	var out []string
	for name, st := range statuses(report) {
		if m, ok := st.(map[string]any); ok && m[flag] == true {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

func failureMessages(st map[string]any) []string {
	var out []string
	events, _ := st["events"].([]any)
	for _, e := range events {
		if m, ok := e.(map[string]any); ok && m["status"] == "failure" {
			out = append(out, fmt.Sprint(m["message"]))
		}
	}
	if len(out) == 0 {
		out = append(out, "failed")
	}
	return out
}

// metricsMessage is Bolt's summary of a report's resource metrics:
// "changed: 1, failed: 0, unchanged: 8 skipped: 0, noop: 0".
func metricsMessage(report map[string]any) (string, bool) {
	metrics, _ := report["metrics"].(map[string]any)
	resources, _ := metrics["resources"].(map[string]any)
	values, ok := resources["values"].([]any)
	if !ok {
		return "", false
	}
	n := map[string]int64{}
	for _, v := range values {
		row, ok := v.([]any)
		if !ok || len(row) < 3 {
			continue
		}
		name, _ := row[0].(string)
		switch x := row[2].(type) {
		case int:
			n[name] = int64(x)
		case int64:
			n[name] = x
		case float64:
			n[name] = int64(x)
		}
	}
	changed, failed, skipped := n["changed"], n["failed"], n["skipped"]
	unchanged := n["total"] - changed - failed - skipped
	noop := n["out_of_sync"] - changed - failed
	return fmt.Sprintf("changed: %d, failed: %d, unchanged: %d skipped: %d, noop: %d", changed, failed, unchanged, skipped, noop), true
}

var ansi = regexp.MustCompile("\x1b\\[[0-9;]*m")

// errorLines returns Puppet's "Error:" lines from its log, without
// colour codes and without Facter's complaints about what it may not read.
func errorLines(log string) string {
	var out []string
	for _, line := range strings.Split(ansi.ReplaceAllString(log, ""), "\n") {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "Error:") && !strings.HasPrefix(line, "Error: Facter:") {
			out = append(out, "  "+line)
		}
	}
	return strings.Join(out, "\n")
}
