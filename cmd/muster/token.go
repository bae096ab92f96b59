package main

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/muster-run/muster"
	"github.com/muster-run/muster/internal/api"
)

// tokenFlags choose between the API (default) and the database directly.
type tokenFlags struct {
	local             bool
	dataDir, database string
}

func (a *app) tokenCommand() *cobra.Command {
	var cf clientFlags
	var tf tokenFlags
	var role string
	create := &cobra.Command{
		Use:   "create NAME --role admin|operator|viewer",
		Short: "Create an API token; its secret is printed once",
		Long: `Create an API token. Roles: admin (manage tokens and every job, read the
audit trail), operator (submit, cancel and bump jobs, read everything
else) and viewer (read jobs, runs, stats and metrics). The secret is
printed once; the server keeps only its SHA-256 hash.

By default this goes through the server's API with an admin token. With
--local it writes straight into the server's database (--data-dir or
--database), for the first token or when every admin token is lost.`,
		Example: `  muster token create ci --role operator
  muster token create grafana --role viewer
  muster token create rescue --role admin --local --data-dir /var/lib/muster`,
		Args: exactArgs(1, "a token NAME"),
		RunE: func(c *cobra.Command, args []string) error {
			r := muster.Role(role)
			if !r.Valid() {
				return usagef("--role %q: use admin, operator or viewer", role)
			}
			var created api.CreatedToken
			if tf.local {
				var err error
				if created, err = tf.createLocal(c.Context(), args[0], r); err != nil {
					return err
				}
			} else {
				cl, err := cf.client()
				if err != nil {
					return err
				}
				if created, err = cl.CreateToken(c.Context(), args[0], r); err != nil {
					return apiError(err)
				}
			}
			if a.flags.format == "json" {
				return a.printJSON(created)
			}
			fmt.Fprintf(a.stderr, "Created token %q (%s). It is shown only now; give it to the client as MUSTER_TOKEN or in a --token-file:\n",
				created.Token.Name, created.Token.Role)
			fmt.Fprintln(a.stdout, created.Secret)
			return nil
		},
	}
	create.Flags().StringVar(&role, "role", "", "admin, operator or viewer (required)")
	create.Flags().BoolVar(&tf.local, "local", false, "write into the server's database directly instead of calling the API")
	create.Flags().StringVar(&tf.dataDir, "data-dir", defaultDataDir(), "with --local: the server's data directory")
	create.Flags().StringVar(&tf.database, "database", "", "with --local: the server's --database (default <data-dir>/muster.db)")

	list := &cobra.Command{
		Use:   "list",
		Short: "List API tokens (never their secrets)",
		Args:  noArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			cl, err := cf.client()
			if err != nil {
				return err
			}
			tokens, err := cl.ListTokens(c.Context())
			if err != nil {
				return apiError(err)
			}
			if a.flags.format == "json" {
				return a.printJSON(tokens)
			}
			fmt.Fprintf(a.stdout, "%-20s %-9s %-8s %-20s %s\n", "NAME", "ROLE", "STATE", "LAST USED", "CREATED BY")
			for _, t := range tokens {
				state, used := "live", "never"
				if t.Revoked {
					state = "revoked"
				}
				if !t.LastUsedAt.IsZero() {
					used = t.LastUsedAt.Local().Format("2006-01-02 15:04")
				}
				fmt.Fprintf(a.stdout, "%-20s %-9s %-8s %-20s %s\n", t.Name, t.Role, state, used, t.CreatedBy)
			}
			return nil
		},
	}
	revoke := &cobra.Command{
		Use:   "revoke NAME",
		Short: "Revoke an API token at once",
		Args:  exactArgs(1, "a token NAME"),
		RunE: func(c *cobra.Command, args []string) error {
			cl, err := cf.client()
			if err != nil {
				return err
			}
			if _, err := cl.RevokeToken(c.Context(), args[0]); err != nil {
				return apiError(err)
			}
			fmt.Fprintf(a.stdout, "Token %q revoked\n", args[0])
			return nil
		},
	}
	g := group("token", "Manage the server's API tokens", create, list, revoke)
	cf.register(g)
	return g
}

// createLocal creates a token straight in the database, audited as the
// local user.
func (tf tokenFlags) createLocal(ctx context.Context, name string, role muster.Role) (api.CreatedToken, error) {
	store, _, err := openStore(ctx, tf.database, tf.dataDir)
	if err != nil {
		return api.CreatedToken{}, err
	}
	defer store.Close()
	secretText, hash, err := api.NewTokenSecret()
	if err != nil {
		return api.CreatedToken{}, err
	}
	actor := "local:" + localUser()
	t, err := store.CreateToken(ctx, muster.Token{Name: name, Role: role, CreatedBy: actor}, hash)
	if err != nil {
		return api.CreatedToken{}, usagef("creating token %q in %s: %v", name, filepath.Clean(tf.dataDir), err)
	}
	detail, _ := json.Marshal(map[string]any{"name": name, "role": role, "local": true})
	if err := store.Audit(ctx, muster.AuditEntry{Actor: actor, Role: muster.RoleAdmin, Action: "token.create",
		Object: fmt.Sprintf("token/%d", t.ID), Remote: "local", Detail: string(detail)}); err != nil {
		return api.CreatedToken{}, err
	}
	return api.CreatedToken{Secret: secretText, Token: api.TokenView{ID: t.ID, Name: t.Name, Role: t.Role,
		CreatedBy: t.CreatedBy, CreatedAt: t.CreatedAt}}, nil
}
