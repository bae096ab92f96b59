// Command layering checks the dependency rules of docs/architecture.md
// with go list. Every package of the module is classified below, and every
// classified package must exist, so the table stays a true map:
//
//   - the root package (the domain: types and contracts) imports nothing
//     from this module;
//   - engine packages import only the root and other engine packages;
//   - an adapter (each owns one outside thing: SSH, a database, HTTP,
//     the file system's events) imports the root, the engine and the
//     support package of its own family, never another adapter;
//   - support packages (shared code of one adapter family) import only the
//     root and the engine;
//   - test kits (helpers and conformance suites) import anything but cmd;
//   - cmd/muster wires everything, and tools (bench, scripts) may use
//     anything.
package main

import (
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strings"
)

const module = "github.com/muster-run/muster"

type layer string

const (
	domain  layer = "domain"
	engine  layer = "engine"
	adapter layer = "adapter"
	support layer = "support"
	testkit layer = "testkit"
	command layer = "cmd"
	tool    layer = "tool"
)

// layers classifies every package, by path relative to the module.
var layers = map[string]layer{
	".": domain,

	"internal/engine": engine, "internal/project": engine, "internal/inventory": engine, "internal/target": engine,
	"internal/task": engine, "internal/plan": engine, "internal/puppet": engine, "internal/action": engine,
	"internal/executor": engine, "internal/output": engine, "internal/secret": engine, "internal/capacity": engine,
	"internal/events": engine, "internal/checkin": engine, "internal/yamlnode": engine, "internal/pki": engine, "internal/pull": engine,
	"internal/builtin": engine, "internal/apply": engine, "internal/boltsecret": engine, "internal/deploy": engine,

	"internal/transport/ssh": adapter, "internal/transport/local": adapter,
	"internal/store/sqlite": adapter, "internal/store/postgres": adapter,
	"internal/server/dispatch": adapter, "internal/api": adapter, "internal/filewatch": adapter, "internal/agent": adapter, "internal/server/checkins": adapter,

	"internal/store/sqlstore": support,

	"internal/transport/transporttest": testkit, "internal/store/storetest": testkit,
	"internal/testkit/sshtest": testkit, "internal/testkit/pgtest": testkit, "internal/testkit/procfs": testkit,
	"internal/boltcompat": testkit,

	"cmd/muster": command,

	"scripts/layering": tool, "bench/queue": tool, "bench/fanout/sshdcpu": tool, "bench/fanout/warm": tool,
	"bench/tasks/warm": tool, "bench/pull": tool, "bench/pull/checkins": tool, "bench/converge": tool,
}

// family is the adapter family a package belongs to: its parent folder
// under internal/ ("store" for internal/store/sqlite), or itself.
func family(p string) string {
	rest := strings.TrimPrefix(p, "internal/")
	if i := strings.Index(rest, "/"); i >= 0 {
		return rest[:i]
	}
	return rest
}

func main() {
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}} {{join .Imports " "}}`, "./...").Output()
	if err != nil {
		fmt.Fprintln(os.Stderr, "go list:", err)
		os.Exit(1)
	}
	var bad []string
	seen := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		fields := strings.Fields(line)
		from := rel(fields[0])
		seen[from] = true
		lf, ok := layers[from]
		if !ok {
			bad = append(bad, fmt.Sprintf("package %s is not classified: add it to the table in scripts/layering", from))
			continue
		}
		for _, imp := range fields[1:] {
			if !strings.HasPrefix(imp, module) {
				continue
			}
			to := rel(imp)
			if why := check(from, lf, to, layers[to]); why != "" {
				bad = append(bad, why)
			}
		}
	}
	for p := range layers {
		if !seen[p] {
			bad = append(bad, fmt.Sprintf("the table names %s, which does not exist: remove it", p))
		}
	}
	if len(bad) > 0 {
		sort.Strings(bad)
		fmt.Fprintln(os.Stderr, "layering violations:\n  "+strings.Join(bad, "\n  "))
		os.Exit(1)
	}
	fmt.Printf("layering ok: %d packages classified\n", len(seen))
}

// check returns why from (of layer lf) may not import to (of layer lt),
// or "" when it may.
func check(from string, lf layer, to string, lt layer) string {
	switch lf {
	case domain:
		return fmt.Sprintf("the root package imports %s: the domain imports nothing of this module", to)
	case engine:
		if lt != domain && lt != engine {
			return fmt.Sprintf("engine package %s imports %s %s", from, lt, to)
		}
	case adapter:
		switch {
		case lt == adapter && to != from:
			return fmt.Sprintf("adapter %s imports adapter %s: only cmd/muster wires adapters together", from, to)
		case lt == support && family(to) != family(from):
			return fmt.Sprintf("adapter %s imports %s, the support package of another family", from, to)
		case lt == testkit || lt == command || lt == tool:
			return fmt.Sprintf("adapter %s imports %s %s", from, lt, to)
		}
	case support:
		if lt != domain && lt != engine {
			return fmt.Sprintf("support package %s imports %s %s", from, lt, to)
		}
	case testkit:
		if lt == command || lt == tool {
			return fmt.Sprintf("test kit %s imports %s", from, to)
		}
	}
	return ""
}

func rel(p string) string {
	if p == module {
		return "."
	}
	return strings.TrimPrefix(p, module+"/")
}
