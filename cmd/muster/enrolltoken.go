package main

import (
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/muster-run/muster/internal/api"
)

// enrollTokenCommand is 'muster enroll-token': the tokens new agents
// enroll with.
func (a *app) enrollTokenCommand() *cobra.Command {
	var cf clientFlags
	var req api.EnrollTokenRequest
	var expires time.Duration
	create := &cobra.Command{
		Use:   "create NAME [--uses N] [--expires 24h] [--certnames 'web*.example.com']",
		Short: "Create an enrollment token for new agents; its secret is printed once",
		Long: `Create a token that agents enroll with on their first start (muster agent
--enroll-token). Each enrollment uses it once, up to --uses, until it
expires. A certificate request whose certname matches --certnames (comma-
separated globs; '*' stays inside one label, '**' crosses dots) is signed
at once; any other waits for 'muster cert sign NAME'. The secret is
printed once, with the CA fingerprint the agents need.`,
		Example: `  muster enroll-token create web-rollout --uses 50 --expires 24h --certnames 'web*.example.com'
  muster enroll-token create lab --uses 2`,
		Args: exactArgs(1, "a token NAME"),
		RunE: func(c *cobra.Command, args []string) error {
			cl, err := a.jobClient(&cf)
			if err != nil {
				return err
			}
			req.Name, req.Expires = args[0], api.Duration(expires)
			created, err := cl.CreateEnrollToken(c.Context(), req)
			if err != nil {
				return apiError(err)
			}
			if a.flags.format == "json" {
				return a.printJSON(created)
			}
			fmt.Fprintf(a.stderr, "Created enrollment token %q: %d use(s) until %s; autosigned certnames: %s.\n",
				created.Token.Name, created.Token.Uses, created.Token.Expires.Local().Format(time.RFC3339), orNone(created.Token.Certnames))
			fmt.Fprintf(a.stderr, "It is shown only now. Start each agent with:\n")
			fmt.Fprintf(a.stdout, "muster agent --server HOST:PORT --enroll-token %s --ca-fingerprint %s\n", created.Secret, created.CAFingerprint)
			return nil
		},
	}
	create.Flags().IntVar(&req.Uses, "uses", 1, "how many agents may enroll with it")
	create.Flags().DurationVar(&expires, "expires", 24*time.Hour, "how long it stays valid")
	create.Flags().StringVar(&req.Certnames, "certnames", "", "autosign: certname globs signed at once (others wait for 'muster cert sign')")
	list := &cobra.Command{
		Use: "list", Short: "List enrollment tokens (never their secrets)", Args: noArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			cl, err := a.jobClient(&cf)
			if err != nil {
				return err
			}
			toks, err := cl.ListEnrollTokens(c.Context())
			if err != nil {
				return apiError(err)
			}
			if a.flags.format == "json" {
				return a.printJSON(toks)
			}
			w := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "NAME\tSTATE\tUSED\tEXPIRES\tAUTOSIGN")
			for _, t := range toks {
				fmt.Fprintf(w, "%s\t%s\t%d/%d\t%s\t%s\n", t.Name, t.State, t.Used, t.Uses, t.Expires.Local().Format(time.RFC3339), orNone(t.Certnames))
			}
			return w.Flush()
		},
	}
	revoke := &cobra.Command{
		Use: "revoke NAME", Short: "Revoke an enrollment token", Args: exactArgs(1, "a token NAME"),
		RunE: func(c *cobra.Command, args []string) error {
			cl, err := a.jobClient(&cf)
			if err != nil {
				return err
			}
			if _, err := cl.RevokeEnrollToken(c.Context(), args[0]); err != nil {
				return apiError(err)
			}
			fmt.Fprintf(a.stdout, "Revoked enrollment token %q\n", args[0])
			return nil
		},
	}
	g := group("enroll-token", "Manage the tokens new pull-mode agents enroll with", create, list, revoke)
	cf.register(g)
	return g
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}
