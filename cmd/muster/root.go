package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/muster-run/muster"
)

// Exit codes.
const (
	exitOK          = 0
	exitFailed      = 1 // a target or the run failed
	exitUsage       = 2 // bad flags, arguments or input; nothing ran
	exitInterrupted = 130
)

// usageError marks errors found before any target was touched.
type usageError struct{ err error }

func (u usageError) Error() string { return u.err.Error() }
func (u usageError) Unwrap() error { return u.err }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

// inputError marks bad input found before any target was touched (an
// inventory file, a parameter, a refused request): exit 2 like a usage
// error, but the message is the whole story, so no pointer to --help.
type inputError struct{ err error }

func (e inputError) Error() string { return e.err.Error() }
func (e inputError) Unwrap() error { return e.err }

// exitCodeOf says how an error ends the process: 2 when nothing ran
// because of the command line or its input, else 1.
func exitCodeOf(err error) int {
	var u usageError
	var in inputError
	if errors.As(err, &u) || errors.As(err, &in) {
		return exitUsage
	}
	return exitFailed
}

// failedRun is returned when the action ran and at least one target failed;
// the results are already printed.
var errFailedRun = errors.New("one or more targets failed")

// app carries the streams and the state of one invocation.
type app struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	flags          globalFlags
	interrupted    atomic.Bool
	serving        atomic.Bool // muster server: a signal is a graceful stop
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	a := &app{stdin: stdin, stdout: stdout, stderr: stderr}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	go func() {
		if _, ok := <-sigs; !ok {
			return
		}
		a.interrupted.Store(true)
		if a.serving.Load() {
			fmt.Fprintln(stderr, "Stopping the server (signal again to exit at once)")
		} else {
			fmt.Fprintln(stderr, "\nInterrupted: cancelling work in flight (press Ctrl-C again to exit at once)")
		}
		cancel()
		if _, ok := <-sigs; ok {
			fmt.Fprintln(stderr, "Exiting at once: remote commands may still be running")
			os.Exit(exitInterrupted)
		}
	}()
	defer close(sigs)

	root := a.rootCommand()
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := unknownSubcommand(root, args)
	if err == nil {
		err = root.ExecuteContext(ctx)
	}
	switch {
	case a.interrupted.Load():
		return exitInterrupted
	case err == nil:
		return exitOK
	case errors.Is(err, errFailedRun):
		return exitFailed
	}
	a.printError(err)
	return exitCodeOf(err)
}

// printError reports a fatal error: as Bolt's error object with
// --format json, otherwise as text on stderr.
func (a *app) printError(err error) {
	if a.flags.format == "json" {
		kind := muster.KindOf(err)
		if kind == "" {
			kind = muster.KindInvalid
		}
		e := muster.AsError(err, kind)
		b, _ := json.Marshal(map[string]any{"_error": e})
		fmt.Fprintln(a.stdout, string(b))
		return
	}
	fmt.Fprintf(a.stderr, "Error: %v\n", err)
	var u usageError
	if errors.As(err, &u) {
		fmt.Fprintln(a.stderr, "Run 'muster --help' or 'muster <command> --help' for usage.")
	}
}

func (a *app) rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "muster",
		Short: "Run commands, scripts and file transfers on many hosts at once",
		Long: `muster runs work on fleets of servers in parallel over SSH, with nothing
installed on the targets. It reads Bolt inventory files (inventory.yaml,
version 2) unchanged and keeps one SSH connection per target for the whole
run, so every action after the first costs a channel, not a handshake.

Targets (-t) are group names, target names, aliases, globs ('web*',
'db{1,2}'), 'all', or ad-hoc URIs (ssh://user@host:2222, local://,
localhost), separated by commas.`,
		Example: `  muster command run 'uptime' -t localhost
  muster command run 'systemctl restart nginx' -t web --run-as root
  muster script run ./check.sh -t 'db*' --format json -- --verbose
  muster file upload ./app.conf /etc/app/app.conf -t web
  muster inventory show -t all --detail`,
		Version:       muster.Version,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetVersionTemplate("muster {{.Version}}\n")
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return usageError{fmt.Errorf("%w (see '%s --help')", err, c.CommandPath())}
	})
	a.flags.registerGlobal(root)
	root.AddCommand(a.commandCommand(), a.scriptCommand(), a.fileCommand(), a.taskCommand(), a.planCommand(), a.inventoryCommand(),
		a.serverCommand(), a.agentCommand(), a.jobCommand(), a.nodeCommand(), a.certCommand(), a.enrollTokenCommand(), a.tokenCommand(), a.secretCommand(), a.applyCommand(), a.projectInitCommand(), a.deployCommand(), a.versionCommand())
	return root
}

func (a *app) versionCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print muster's version",
		Args:  noArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			fmt.Fprintf(a.stdout, "muster %s\n", muster.Version)
			return nil
		},
	}
}

// group returns a parent command that only holds subcommands.
func group(use, short string, subs ...*cobra.Command) *cobra.Command {
	c := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, args []string) error {
			return usagef("'%s' needs a subcommand: %s", c.CommandPath(), subNames(c))
		},
	}
	c.AddCommand(subs...)
	return c
}

func subNames(c *cobra.Command) string {
	s := ""
	for i, sub := range c.Commands() {
		if i > 0 {
			s += ", "
		}
		s += sub.Name()
	}
	return s
}

func noArgs(c *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usagef("'%s' takes no arguments, got %q", c.CommandPath(), args)
	}
	return nil
}

func exactArgs(n int, what string) cobra.PositionalArgs {
	return func(c *cobra.Command, args []string) error {
		if len(args) != n {
			return usagef("'%s' needs %s (got %d argument(s))", c.CommandPath(), what, len(args))
		}
		return nil
	}
}
