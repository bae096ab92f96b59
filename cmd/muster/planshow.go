package main

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/muster-run/muster/internal/plan"
)

func (a *app) listPlans(idx *plan.Index, all bool) error {
	plans := idx.List(all)
	if a.flags.format == "json" {
		rows := make([][2]string, len(plans))
		for i, p := range plans {
			rows[i] = [2]string{p.Name, p.Description}
		}
		return a.printJSON(map[string]any{"plans": rows})
	}
	var b strings.Builder
	b.WriteString("Plans\n")
	width := 0
	for _, p := range plans {
		width = max(width, len(p.Name))
	}
	for _, p := range plans {
		note := firstLine(p.Description)
		if p.Err != nil {
			note = "(does not load: run 'muster plan show " + p.Name + "')"
		}
		fmt.Fprintf(&b, "  %-*s  %s\n", width, p.Name, note)
	}
	if len(plans) == 0 {
		b.WriteString("  (none found)\n")
	}
	_, err := fmt.Fprint(a.stdout, b.String())
	return err
}

func (a *app) showPlan(p *plan.Plan) error {
	if a.flags.format == "json" {
		params := map[string]any{}
		for _, pa := range p.Parameters {
			params[pa.Name] = map[string]any{"type": pa.TypeString, "default_value": pa.Default, "description": pa.Description}
		}
		return a.printJSON(map[string]any{"name": p.Name, "description": p.Description, "parameters": params, "file": p.File})
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s", p.Name)
	if p.Description != "" {
		fmt.Fprintf(&b, " - %s", p.Description)
	}
	b.WriteString("\n\nUSAGE\n  muster plan run " + p.Name)
	for _, pa := range p.Parameters {
		switch {
		case pa.Name == "targets":
			b.WriteString(" -t <targets>")
		case pa.Required():
			fmt.Fprintf(&b, " %s=<value>", pa.Name)
		default:
			fmt.Fprintf(&b, " [%s=<value>]", pa.Name)
		}
	}
	b.WriteString("\n")
	if len(p.Parameters) > 0 {
		b.WriteString("\nPARAMETERS\n")
		for _, pa := range p.Parameters {
			fmt.Fprintf(&b, "  %s: %s\n", pa.Name, pa.TypeString)
			if pa.HasDefault {
				d, _ := json.Marshal(pa.Default)
				fmt.Fprintf(&b, "      Default: %s\n", d)
			}
			if pa.Description != "" {
				fmt.Fprintf(&b, "      %s\n", pa.Description)
			}
		}
	}
	fmt.Fprintf(&b, "\nFILE\n  %s\n", p.File)
	_, err := fmt.Fprint(a.stdout, b.String())
	return err
}
