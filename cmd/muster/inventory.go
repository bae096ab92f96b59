package main

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/muster-run/muster"
	"github.com/muster-run/muster/internal/inventory"
	"github.com/muster-run/muster/internal/puppet"
	"github.com/muster-run/muster/internal/target"
)

// secretKeys are config keys whose values are never printed.
var secretKeys = map[string]bool{"password": true, "sudo-password": true, "key-data": true}

func (a *app) inventoryCommand() *cobra.Command {
	var detail bool
	show := &cobra.Command{
		Use:   "show [-t TARGETS] [--detail]",
		Short: "Show the targets a spec resolves to",
		Long: `Resolve -t (default: all) against the inventory and print the targets, in
the same order an action would use. --detail prints each target's merged
config, vars, facts, features and groups after Bolt's merge rules.
Passwords, inline keys and every value from the pkcs7 or prompt plugin
are shown as "[redacted]".`,
		Example: `  muster inventory show
  muster inventory show -t 'web*,db1' --detail
  muster inventory show -t all --format json`,
		Args: noArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if err := a.checkFormat(); err != nil {
				return err
			}
			inv, err := a.loadInventory(c)
			if err != nil {
				return err
			}
			specs := a.flags.targets
			if len(specs) == 0 {
				specs = []string{"all"}
			}
			if specs, err = a.targetSpecs(specs); err != nil {
				return err
			}
			targets, err := target.Resolve(inv, specs)
			if err != nil {
				return inputError{err}
			}
			var known, adhoc []*muster.Target
			for _, t := range targets {
				if inv.Has(t.Name) {
					known = append(known, t)
				} else {
					adhoc = append(adhoc, t)
				}
			}
			if a.flags.format == "json" {
				return a.inventoryJSON(inv, known, adhoc, targets, detail)
			}
			return a.inventoryHuman(inv, known, adhoc, targets, detail)
		},
	}
	show.Flags().StringArrayVarP(&a.flags.targets, "targets", "t", nil, "targets to show (default all)")
	show.Flags().BoolVar(&detail, "detail", false, "show merged config, vars, facts, features and groups")
	return group("inventory", "Inspect the inventory", show)
}

func detailOf(inv *inventory.Inventory, t *muster.Target) map[string]any {
	alias := t.Alias
	if alias == nil {
		alias = []string{}
	}
	d := map[string]any{
		"name": t.Name, "uri": t.URI, "alias": alias,
		"config": redact(t.Config), "vars": puppet.DeepCopy(nonNil(t.Vars)), "facts": puppet.DeepCopy(nonNil(t.Facts)),
		"features": t.SortedFeatures(), "groups": t.Groups,
	}
	// values from secret-bearing plugins (pkcs7, prompt)
	for _, p := range inv.Sensitive(t.Name) {
		redactPath(d, p)
	}
	return d
}

// redactPath replaces the value at path p of m (a copy) with "[redacted]".
func redactPath(m map[string]any, p []string) {
	for i, k := range p {
		v, ok := m[k]
		if !ok {
			return
		}
		if i == len(p)-1 {
			m[k] = "[redacted]"
			return
		}
		sub, ok := v.(map[string]any)
		if !ok {
			m[k] = "[redacted]"
			return
		}
		m = sub
	}
}

func nonNil(m map[string]any) map[string]any {
	if m == nil {
		return map[string]any{}
	}
	return m
}

// redact copies a config map with every secret value replaced.
func redact(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		switch {
		case secretKeys[k]:
			out[k] = "[redacted]"
		default:
			if sub, ok := v.(map[string]any); ok {
				out[k] = redact(sub)
			} else {
				out[k] = v
			}
		}
	}
	return out
}

func (a *app) inventoryJSON(inv *inventory.Inventory, known, adhoc, all []*muster.Target, detail bool) error {
	file := inv.File()
	var doc any
	if detail {
		ds := make([]any, len(all))
		for i, t := range all {
			ds[i] = detailOf(inv, t)
		}
		doc = map[string]any{"targets": ds, "count": len(all)}
	} else {
		doc = map[string]any{
			"inventory": map[string]any{"targets": muster.Names(known), "count": len(known), "file": file},
			"adhoc":     map[string]any{"targets": muster.Names(adhoc), "count": len(adhoc)},
			"targets":   muster.Names(all), "count": len(all),
		}
	}
	b, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(a.stdout, string(b))
	return err
}

func (a *app) inventoryHuman(inv *inventory.Inventory, known, adhoc, all []*muster.Target, detail bool) error {
	file := inv.File()
	var b strings.Builder
	if detail {
		for _, t := range all {
			d, _ := json.MarshalIndent(detailOf(inv, t), "  ", "  ")
			fmt.Fprintf(&b, "%s\n  %s\n", t.Name, d)
		}
	} else {
		if len(known) > 0 {
			b.WriteString("Targets\n")
			for _, t := range known {
				fmt.Fprintf(&b, "  %s\n", t.Name)
			}
		}
		if len(adhoc) > 0 {
			b.WriteString("Ad-hoc targets (not in the inventory)\n")
			for _, t := range adhoc {
				fmt.Fprintf(&b, "  %s\n", t.Name)
			}
		}
	}
	src := file
	if src == "" {
		src = "none (ad-hoc targets only)"
	}
	fmt.Fprintf(&b, "\nInventory source: %s\n%d %s\n", src, len(all), map[bool]string{true: "target", false: "targets"}[len(all) == 1])
	_, err := fmt.Fprint(a.stdout, b.String())
	return err
}
