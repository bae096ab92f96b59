package main

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/muster-run/muster"
	"github.com/muster-run/muster/internal/api"
)

// certCommand is 'muster cert': the agents' certificates.
func (a *app) certCommand() *cobra.Command {
	var cf clientFlags
	var state string
	list := &cobra.Command{
		Use: "list [--state pending|signed|revoked]", Short: "List agents' certificates and requests", Args: noArgs,
		RunE: func(c *cobra.Command, _ []string) error { return a.listNodes(c, &cf, muster.NodeState(state), true) },
	}
	list.Flags().StringVar(&state, "state", "", "only pending, signed or revoked")
	show := &cobra.Command{
		Use: "show CERTNAME", Short: "Show one agent's certificate or pending request", Args: exactArgs(1, "a CERTNAME"),
		RunE: func(c *cobra.Command, args []string) error { return a.showNode(c, &cf, args[0]) },
	}
	sign := &cobra.Command{
		Use: "sign CERTNAME", Short: "Sign a pending certificate request (compare its fingerprint with the agent's log first)",
		Args: exactArgs(1, "a CERTNAME"),
		RunE: func(c *cobra.Command, args []string) error {
			return a.nodeAction(c, &cf, args[0], "Signed the certificate of %s (serial %s, expires %s)", (*api.Client).SignNode)
		},
	}
	revoke := &cobra.Command{
		Use: "revoke CERTNAME", Short: "Revoke an agent's certificate: its next handshake is refused",
		Args: exactArgs(1, "a CERTNAME"),
		RunE: func(c *cobra.Command, args []string) error {
			return a.nodeAction(c, &cf, args[0], "Revoked the certificate of %s (serial %s, was valid until %s)", (*api.Client).RevokeNode)
		},
	}
	ca := &cobra.Command{
		Use: "ca", Short: "Print the CA certificate and its fingerprint (what agents pin with --ca-fingerprint)", Args: noArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			cl, err := a.jobClient(&cf)
			if err != nil {
				return err
			}
			v, err := cl.CA(c.Context())
			if err != nil {
				return apiError(err)
			}
			if a.flags.format == "json" {
				return a.printJSON(v)
			}
			fmt.Fprintf(a.stderr, "CA %s, valid until %s\nfingerprint: ", v.Subject, v.NotAfter.Local().Format(time.RFC3339))
			fmt.Fprintln(a.stdout, v.Fingerprint)
			fmt.Fprint(a.stderr, v.Certificate)
			return nil
		},
	}
	g := group("cert", "Manage the certificates of pull-mode agents", list, show, sign, revoke, ca)
	cf.register(g)
	return g
}

// nodeCommand is 'muster node': the pull-mode nodes.
func (a *app) nodeCommand() *cobra.Command {
	var cf clientFlags
	list := &cobra.Command{
		Use: "list", Short: "List nodes: last check-in, last run, next check-in, certificate expiry", Args: noArgs,
		RunE: func(c *cobra.Command, _ []string) error { return a.listNodes(c, &cf, "", false) },
	}
	show := &cobra.Command{
		Use: "show CERTNAME", Short: "Show one node", Args: exactArgs(1, "a CERTNAME"),
		RunE: func(c *cobra.Command, args []string) error { return a.showNode(c, &cf, args[0]) },
	}
	run := &cobra.Command{
		Use:   "run CERTNAME...",
		Short: "Make nodes run now: their agents get the run at once, within capacity",
		Long: `Queue a pull run for each node, at the front of the queue. An agent whose
check-in the server is holding (long poll) gets it at once; the others at
their next check-in. It still runs only within the backends' capacity.
Names may be certname globs ('web*').`,
		Example: `  muster node run web1.example.com
  muster node run 'web*'`,
		Args: func(c *cobra.Command, args []string) error {
			if len(args) == 0 {
				return usagef("'%s' needs at least one CERTNAME", c.CommandPath())
			}
			return nil
		},
		RunE: func(c *cobra.Command, args []string) error {
			cl, err := a.jobClient(&cf)
			if err != nil {
				return err
			}
			res, err := cl.RunNodes(c.Context(), api.Targets{Nodes: args})
			if err != nil {
				return apiError(err)
			}
			if a.flags.format == "json" {
				return a.printJSON(res)
			}
			fmt.Fprintf(a.stdout, "Job %d: %d node(s) asked to run now", res.Job.ID, res.Job.TargetCount)
			if n := len(res.Coalesced); n > 0 {
				fmt.Fprintf(a.stdout, " (%d already had a run waiting)", n)
			}
			fmt.Fprintf(a.stdout, "\nFollow it with: muster job watch %d\n", res.Job.ID)
			return nil
		},
	}
	facts := &cobra.Command{
		Use:   "facts CERTNAME [FACT...]",
		Short: "Show the facts a node's agent uploaded (all, or the named ones: os.family)",
		Long: `Show the facts the node's agent last uploaded, one "name = value" line per
fact with dotted names (os.release.major), or the JSON object with
--format json. Name facts to show only those. The agent uploads its facts
when the server asks (pull.yaml's facts.upload_every).`,
		Example: `  muster node facts web1.example.com
  muster node facts web1.example.com os.family os.release.major
  muster node facts web1.example.com --format json`,
		Args: func(c *cobra.Command, args []string) error {
			if len(args) == 0 {
				return usagef("'%s' needs a CERTNAME", c.CommandPath())
			}
			return nil
		},
		RunE: func(c *cobra.Command, args []string) error { return a.nodeFacts(c, &cf, args[0], args[1:]) },
	}
	g := group("node", "Inspect pull-mode nodes and make them run now", list, show, facts, run)
	cf.register(g)
	return g
}

func (a *app) listNodes(c *cobra.Command, cf *clientFlags, state muster.NodeState, certs bool) error {
	cl, err := a.jobClient(cf)
	if err != nil {
		return err
	}
	var nodes []api.NodeView
	after := ""
	for {
		page, err := cl.ListNodes(c.Context(), api.ListNodesOptions{State: state, After: after})
		if err != nil {
			return apiError(err)
		}
		nodes = append(nodes, page.Nodes...)
		if after = page.NextAfter; after == "" {
			break
		}
	}
	if a.flags.format == "json" {
		return a.printJSON(map[string]any{"nodes": nodes, "count": len(nodes)})
	}
	w := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
	if certs {
		fmt.Fprintln(w, "CERTNAME\tSTATE\tSERIAL\tEXPIRES\tFINGERPRINT")
		for _, n := range nodes {
			fp := n.Fingerprint
			if n.State == muster.NodePending {
				fp = n.RequestFingerprint + " (request)"
			}
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", n.Certname, n.State, orDash(n.Serial), when(n.CertExpires), fp)
		}
		return w.Flush()
	}
	fmt.Fprintln(w, "NODE\tSTATE\tLAST CHECK-IN\tLAST RUN\tNEXT CHECK-IN\tCERT EXPIRES")
	for _, n := range nodes {
		next := time.Time{}
		if n.Live != nil {
			next = n.Live.NextCheckIn
		}
		lastRun := when(n.LastRunAt)
		if n.LastRunID != 0 {
			lastRun += fmt.Sprintf(" (run %d)", n.LastRunID)
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", n.Certname, n.State, when(n.LastCheckIn), lastRun, when(next), when(n.CertExpires))
	}
	return w.Flush()
}

func (a *app) showNode(c *cobra.Command, cf *clientFlags, certname string) error {
	cl, err := a.jobClient(cf)
	if err != nil {
		return err
	}
	n, err := cl.Node(c.Context(), certname)
	if err != nil {
		return apiError(err)
	}
	if a.flags.format == "json" {
		return a.printJSON(n)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "Node %s: %s\n", n.Certname, n.State)
	row := func(k, v string) { fmt.Fprintf(&b, "  %-14s %s\n", k+":", v) }
	row("serial", orDash(n.Serial))
	row("fingerprint", orDash(n.Fingerprint))
	if n.RequestFingerprint != "" {
		row("request", n.RequestFingerprint)
	}
	row("cert expires", when(n.CertExpires))
	row("enrolled", when(n.EnrolledAt)+" with token "+orDash(n.EnrolledWith))
	row("signed", when(n.SignedAt))
	row("last check-in", when(n.LastCheckIn))
	if n.LastRunID != 0 {
		row("last run", fmt.Sprintf("%d at %s (muster job show for its result)", n.LastRunID, when(n.LastRunAt)))
	}
	if !n.FactsAt.IsZero() {
		row("facts", "uploaded "+when(n.FactsAt)+" (muster node facts "+n.Certname+")")
	}
	if n.Live != nil {
		row("next check-in", when(n.Live.NextCheckIn))
		if n.Live.Backend != "" {
			row("backend", n.Live.Backend)
		}
	}
	_, err = fmt.Fprint(a.stdout, b.String())
	return err
}

// nodeAction signs or revokes a node's certificate and says so.
func (a *app) nodeAction(c *cobra.Command, cf *clientFlags, certname, format string,
	do func(*api.Client, context.Context, string) (api.NodeView, error)) error {
	cl, err := a.jobClient(cf)
	if err != nil {
		return err
	}
	n, err := do(cl, c.Context(), certname)
	if err != nil {
		return apiError(err)
	}
	if a.flags.format == "json" {
		return a.printJSON(n)
	}
	fmt.Fprintf(a.stdout, format+"\n", n.Certname, orDash(n.Serial), when(n.CertExpires))
	return nil
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func when(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Local().Format(time.RFC3339)
}

// nodeFacts prints a node's uploaded facts, flattened to dotted names.
func (a *app) nodeFacts(c *cobra.Command, cf *clientFlags, certname string, names []string) error {
	cl, err := a.jobClient(cf)
	if err != nil {
		return err
	}
	nf, err := cl.NodeFacts(c.Context(), certname)
	if err != nil {
		return apiError(err)
	}
	flat := map[string]any{}
	flatten("", nf.Facts, flat)
	if len(names) > 0 {
		picked := map[string]any{}
		for _, name := range names {
			v, ok := flat[name]
			if !ok {
				if sub := lookupDotted(nf.Facts, name); sub != nil {
					v, ok = sub, true
				}
			}
			if !ok {
				return inputError{fmt.Errorf("node %s has no fact %q (muster node facts %s lists them)", certname, name, certname)}
			}
			picked[name] = v
		}
		flat = picked
		if a.flags.format == "json" {
			return a.printJSON(picked)
		}
	} else if a.flags.format == "json" {
		return a.printJSON(nf)
	}
	if nf.FactsAt.IsZero() {
		fmt.Fprintf(a.stderr, "Node %s has not uploaded facts yet.\n", certname)
		return nil
	}
	keys := make([]string, 0, len(flat))
	for k := range flat {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v, _ := json.Marshal(flat[k])
		if s, ok := flat[k].(string); ok {
			v = []byte(s)
		}
		fmt.Fprintf(a.stdout, "%s = %s\n", k, v)
	}
	return nil
}

// flatten turns nested objects into dotted names; arrays stay values.
func flatten(prefix string, v any, out map[string]any) {
	m, ok := v.(map[string]any)
	if !ok || len(m) == 0 && prefix != "" {
		out[prefix] = v
		return
	}
	for k, sub := range m {
		name := k
		if prefix != "" {
			name = prefix + "." + k
		}
		flatten(name, sub, out)
	}
}

// lookupDotted finds a dotted name's value, objects included.
func lookupDotted(facts map[string]any, name string) any {
	var cur any = facts
	for _, part := range strings.Split(name, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		if cur, ok = m[part]; !ok {
			return nil
		}
	}
	return cur
}
