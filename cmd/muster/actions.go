package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/muster-run/muster"
	"github.com/muster-run/muster/internal/action"
)

func (a *app) commandCommand() *cobra.Command {
	run := &cobra.Command{
		Use:   "run COMMAND -t TARGETS",
		Short: "Run a shell command on targets",
		Long: `Run a command on every target with the target's login shell, as ssh does.
The command runs on one channel of a connection that stays open for the
whole run. COMMAND may be '@file' to read it from a file, or '-' to read it
from standard input. Exit code: 0 when it succeeded everywhere, 1 when any
target failed, 2 for a usage error, 130 when interrupted.

Connection flags (--user, --port, --private-key, --password-prompt,
--host-key-check or --no-host-key-check, --known-hosts, --connect-timeout,
--run-as, --tmpdir) override the inventory's settings; a user or port
written in a target's URI still wins. (Bolt ranks its inventory above
these flags.) --log-level debug shows how each target is reached.

` + rerunHelp,
		Example: `  muster command run 'uptime' -t all
  muster command run 'systemctl is-active nginx' -t web --format json
  muster command run 'apt-get -y upgrade' -t 'db*' --run-as root --concurrency 10 --timeout 10m
  muster command run 'echo $GREETING' -t localhost --env-var GREETING=hello
  muster command run 'systemctl restart nginx' --rerun failure --run-as root
  muster command run 'id -un' -t web --user deploy --port 2222 --known-hosts ./known_hosts`,
		Args: exactArgs(1, "one COMMAND (quote it)"),
		RunE: func(c *cobra.Command, args []string) error {
			line, err := a.commandText(args[0])
			if err != nil {
				return err
			}
			return a.runAction(c, "command", line, func(ctx context.Context, r *action.Runner, t *muster.Target, o action.Options) *muster.Result {
				return r.Command(ctx, t, line, o)
			})
		},
	}
	a.flags.registerRun(run, true)
	return group("command", "Run shell commands on targets", run)
}

// commandText reads "@file" and "-" forms of a command argument.
func (a *app) commandText(arg string) (string, error) {
	var b []byte
	var err error
	switch {
	case arg == "-":
		b, err = io.ReadAll(a.stdin)
	case strings.HasPrefix(arg, "@"):
		b, err = os.ReadFile(arg[1:])
	default:
		b = []byte(arg)
	}
	if err != nil {
		return "", usagef("reading the command: %v", err)
	}
	line := strings.TrimRight(string(b), "\n")
	if strings.TrimSpace(line) == "" {
		return "", usagef("the command is empty")
	}
	return line, nil
}

func (a *app) scriptCommand() *cobra.Command {
	run := &cobra.Command{
		Use:   "run SCRIPT [ARGS...] -t TARGETS",
		Short: "Upload a local script to targets, run it and remove it",
		Long: `Copy a local script into a private (mode 700) temporary directory on each
target, run it with ARGS, and remove the directory, all in a single SSH
channel: the script travels on the command's standard input. A script
without a shebang line runs with /bin/sh.

` + scriptArgsHelp + "\n\n" + rerunHelp,
		Example: `  muster script run ./health.sh -t web
  muster script run ./health.sh --deep -t web
  muster script run ./rotate-logs.sh --keep 7 -t all --run-as root
  muster script run ./check.sh -t 'db*' --format json -- --verbose -t quick
  muster script run ./health.sh --rerun failure`,
	}
	withScriptArgs(run, func(c *cobra.Command, script string, scriptArgs []string) error {
		content, err := os.ReadFile(script)
		if err != nil {
			return inputError{fmt.Errorf("cannot read script: %w", err)}
		}
		return a.runAction(c, "script", script, func(ctx context.Context, r *action.Runner, t *muster.Target, o action.Options) *muster.Result {
			return r.Script(ctx, t, script, content, scriptArgs, o)
		})
	})
	a.flags.registerRun(run, true)
	return group("script", "Run local scripts on targets", run)
}

func (a *app) fileCommand() *cobra.Command {
	upload := &cobra.Command{
		Use:   "upload SRC DEST -t TARGETS",
		Short: "Copy a local file or directory to targets",
		Long: `Copy SRC to DEST on every target. Directories are copied recursively and
every file keeps its mode. The copy is packed once, streamed to each target
in one channel, unpacked in a private temporary directory and moved into
place, so a failed transfer never leaves a half-written DEST. A relative
DEST is relative to the login user's home directory. With --run-as the
files are written as that user. Targets need tar, as every Linux has.

` + rerunHelp,
		Example: `  muster file upload ./nginx.conf /etc/nginx/nginx.conf -t web --run-as root
  muster file upload ./site/ /srv/www/site -t web
  muster file upload ./nginx.conf /etc/nginx/nginx.conf --rerun failure --run-as root`,
		Args: exactArgs(2, "SRC and DEST"),
		RunE: func(c *cobra.Command, args []string) error {
			archive, err := action.Pack(args[0])
			if err != nil {
				return inputError{err}
			}
			return a.runAction(c, "upload", args[0], func(ctx context.Context, r *action.Runner, t *muster.Target, o action.Options) *muster.Result {
				return r.Upload(ctx, t, archive, args[1], o)
			})
		},
	}
	download := &cobra.Command{
		Use:   "download SRC DESTDIR -t TARGETS",
		Short: "Copy a file or directory from targets to DESTDIR/<target>/",
		Long: `Copy SRC from every target into DESTDIR/<target name>/<basename of SRC>,
recursively for directories, keeping modes. Each target gets its own
directory, so the same path from many hosts never collides. Paths in the
stream are checked: nothing is written outside DESTDIR.`,
		Example: `  muster file download /var/log/syslog ./logs -t web
  muster file download /etc/nginx ./configs -t 'web*' --run-as root`,
		Args: exactArgs(2, "SRC and DESTDIR"),
		RunE: func(c *cobra.Command, args []string) error {
			return a.runAction(c, "download", args[0], func(ctx context.Context, r *action.Runner, t *muster.Target, o action.Options) *muster.Result {
				return r.Download(ctx, t, args[0], args[1], o)
			})
		},
	}
	a.flags.registerRun(upload, false)
	a.flags.registerRun(download, false)
	return group("file", "Copy files to and from targets", upload, download)
}
