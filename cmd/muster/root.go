package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"sync/atomic"
	"syscall"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

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
		a.serverCommand(), a.jobCommand(), a.tokenCommand(), a.versionCommand())
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

// unknownSubcommand finds a command line that names a subcommand muster
// does not have ("muster command rn uptime -t web"), before cobra parses
// flags that belong to the subcommand and blames them instead.
func unknownSubcommand(root *cobra.Command, args []string) error {
	root.InitDefaultHelpCmd()
	c, rest, err := root.Find(args)
	if err != nil {
		return usageError{err}
	}
	if !c.HasSubCommands() {
		return nil
	}
	c.InheritedFlags() // merges the persistent flags into c.Flags()
	fs := c.Flags()
	for i := 0; i < len(rest); i++ {
		arg := rest[i]
		if arg == "--" {
			return nil
		}
		if !strings.HasPrefix(arg, "-") || arg == "-" {
			if c.SuggestionsMinimumDistance <= 0 {
				c.SuggestionsMinimumDistance = 2
			}
			msg := fmt.Sprintf("unknown command %q for %q", arg, c.CommandPath())
			if sug := c.SuggestionsFor(arg); len(sug) > 0 {
				msg += fmt.Sprintf("; did you mean %q?", sug[0])
			}
			return usagef("%s (subcommands: %s)", msg, subNames(c))
		}
		if takesValue(fs, arg) || anySubTakesValue(c, arg) {
			i++ // the flag's value is not a subcommand
		}
	}
	return nil
}

// anySubTakesValue reports whether a subcommand of c has a flag arg that
// takes a value: "muster command -t web rn" names the flag of "run".
func anySubTakesValue(c *cobra.Command, arg string) bool {
	for _, sub := range c.Commands() {
		if takesValue(sub.Flags(), arg) {
			return true
		}
	}
	return false
}

// takesValue reports whether arg is a flag of fs that consumes the next
// argument as its value ("-t web", not "-t=web" or "--verbose").
func takesValue(fs *pflag.FlagSet, arg string) bool {
	var f *pflag.Flag
	switch {
	case strings.HasPrefix(arg, "--"):
		if strings.Contains(arg, "=") {
			return false
		}
		f = fs.Lookup(arg[2:])
	case len(arg) == 2:
		f = fs.ShorthandLookup(arg[1:])
	}
	return f != nil && f.NoOptDefVal == ""
}
