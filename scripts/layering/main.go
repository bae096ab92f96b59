// Command layering checks the dependency rules of DESIGN.md with go list:
// the root package imports nothing from this module, engine packages never
// import an adapter, adapters never import each other, and only cmd/muster
// wires adapters together. Test helper packages (*test) are exempt.
package main

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
)

const module = "github.com/muster-run/muster"

var engine = map[string]bool{"inventory": true, "target": true, "task": true, "plan": true, "puppet": true, "executor": true,
	"capacity": true, "action": true, "output": true, "facts": true, "audit": true, "secret": true}

var adapters = map[string]bool{"ssh": true, "local": true, "agent": true, "sqlite": true, "postgres": true,
	"httpapi": true, "dispatch": true, "filewatch": true}

func main() {
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}} {{join .Imports " "}}`, "./...").Output()
	if err != nil {
		fmt.Fprintln(os.Stderr, "go list:", err)
		os.Exit(1)
	}
	var bad []string
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		fields := strings.Fields(line)
		pkg := fields[0]
		from := short(pkg)
		for _, imp := range fields[1:] {
			if !strings.HasPrefix(imp, module) {
				continue
			}
			to := short(imp)
			switch {
			case pkg == module:
				bad = append(bad, fmt.Sprintf("the root package imports %s", imp))
			case engine[from] && adapters[to]:
				bad = append(bad, fmt.Sprintf("engine package %s imports adapter %s", from, to))
			case adapters[from] && adapters[to] && from != to:
				bad = append(bad, fmt.Sprintf("adapter %s imports adapter %s", from, to))
			}
		}
	}
	if len(bad) > 0 {
		fmt.Fprintln(os.Stderr, "layering violations:\n  "+strings.Join(bad, "\n  "))
		os.Exit(1)
	}
	fmt.Println("layering ok")
}

// short returns the internal package name of an import path ("ssh" for
// .../internal/ssh), or "" for anything else.
func short(p string) string {
	rest, ok := strings.CutPrefix(p, module+"/internal/")
	if !ok {
		return ""
	}
	name, _, _ := strings.Cut(rest, "/")
	return name
}
