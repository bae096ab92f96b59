package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"

	"github.com/spf13/cobra"

	"github.com/muster-run/muster"
	"github.com/muster-run/muster/internal/action"
	"github.com/muster-run/muster/internal/apply"
)

func (a *app) applyCommand() *cobra.Command {
	var code string
	var noop, install bool
	c := &cobra.Command{
		Use:   "apply MANIFEST.pp -t TARGETS | apply -e CODE -t TARGETS | apply prep -t TARGETS",
		Short: "Apply Puppet code on targets with puppet apply, or check for Puppet there",
		Long: `Apply a Puppet manifest on every target with Puppet's own puppet apply
(--detailed-exitcodes), and report Bolt's ApplyResult: Puppet's report per
target (status, resource_statuses, metrics), with the changed and failed
resources. The manifest, and the project's module path (packed once, named by
its content hash), travel in the apply's one SSH channel, into a private
temporary directory that is removed when Puppet is done. The catalog is
compiled on the target, so the target needs Puppet: see 'apply prep'.

'muster apply prep' is Bolt's apply_prep: it checks that puppet runs on each
target. With --install it installs the OS's puppet-agent (or puppet) package
where Puppet is missing, with apt-get, dnf, yum, zypper or apk; that needs
root (--run-as root). Without --install, the targets lacking Puppet fail and
are listed. (A manifest file named prep must be written ./prep.)

Exit code: 0 when every target applied (with or without changes), 1 when any
target failed (a resource failed, the code did not compile, Puppet is
missing), 2 for a usage error, 130 when interrupted.`,
		Example: `  muster apply site.pp -t web --run-as root
  muster apply -e "package { 'nginx': ensure => present }" -t web --run-as root --noop
  muster apply prep -t all
  muster apply prep --install -t new_hosts --run-as root`,
		RunE: func(c *cobra.Command, args []string) error {
			if len(args) > 0 && args[0] == "prep" {
				if len(args) > 1 || code != "" || noop {
					return usagef("'muster apply prep' takes no manifest, -e or --noop: it only checks for (and with --install installs) Puppet")
				}
				return a.applyPrep(c, install)
			}
			if install {
				return usagef("--install belongs to 'muster apply prep'")
			}
			manifest, object, err := a.manifestSource(args, code, c.Flags().Changed("execute"))
			if err != nil {
				return err
			}
			idx, err := a.taskIndex()
			if err != nil {
				return err
			}
			ap := &apply.Applier{Modules: idx.Modules}
			var once sync.Once
			return a.runAction(c, "apply", object, func(ctx context.Context, r *action.Runner, t *muster.Target, o action.Options) *muster.Result {
				once.Do(func() { ap.Runner = r })
				return ap.Apply(ctx, t, manifest, apply.Options{Noop: noop, Object: object}, o)
			})
		},
	}
	a.flags.registerRun(c, false)
	c.Flags().StringVarP(&code, "execute", "e", "", "Puppet code to apply, instead of a manifest file")
	c.Flags().BoolVar(&noop, "noop", false, "pass --noop: report what would change, change nothing")
	c.Flags().BoolVar(&install, "install", false, "with 'apply prep': install the OS's Puppet package where it is missing (needs root)")
	return c
}

// manifestSource returns the code to apply and the object that names it
// in results: the manifest file, or "" for -e code.
func (a *app) manifestSource(args []string, code string, execute bool) (string, string, error) {
	switch {
	case execute && len(args) > 0:
		return "", "", usagef("give either a MANIFEST file or -e CODE, not both (got %q and -e)", args[0])
	case execute:
		if strings.TrimSpace(code) == "" {
			return "", "", usagef("-e: the Puppet code is empty")
		}
		return code + "\n", "", nil
	case len(args) == 0:
		return "", "", usagef("'muster apply' needs a MANIFEST file, or -e CODE")
	case len(args) > 1:
		return "", "", usagef("'muster apply' takes one MANIFEST file, got %q", args)
	}
	b, err := os.ReadFile(args[0])
	if err != nil {
		return "", "", inputError{fmt.Errorf("cannot read the manifest: %w", err)}
	}
	return string(b), args[0], nil
}

// applyPrep runs apply prep and, when targets lack Puppet, lists them on
// stderr with the way out.
func (a *app) applyPrep(c *cobra.Command, install bool) error {
	var mu sync.Mutex
	var missing []string
	err := a.runAction(c, "apply_prep", "", func(ctx context.Context, r *action.Runner, t *muster.Target, o action.Options) *muster.Result {
		res := apply.Prep(ctx, r, t, install, o)
		if !res.OK() && res.Error.IssueCode == apply.IssuePuppetMissing {
			mu.Lock()
			missing = append(missing, t.Name)
			mu.Unlock()
		}
		return res
	})
	if errors.Is(err, errFailedRun) && len(missing) > 0 {
		sort.Strings(missing)
		how := "run 'muster apply prep --install --run-as root' on them, or install puppet-agent"
		if install {
			how = "installing needs root: add --run-as root"
		}
		fmt.Fprintf(a.stderr, "Puppet is missing on %d target%s: %s (%s)\n", len(missing), map[bool]string{true: "", false: "s"}[len(missing) == 1],
			strings.Join(missing, ", "), how)
	}
	return err
}
