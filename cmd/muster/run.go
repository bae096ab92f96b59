package main

import (
	"context"
	"os"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/muster-run/muster"
	"github.com/muster-run/muster/internal/action"
	"github.com/muster-run/muster/internal/executor"
	"github.com/muster-run/muster/internal/output"
	"github.com/muster-run/muster/internal/transport/local"
	"github.com/muster-run/muster/internal/transport/ssh"
)

// actionFunc performs one action on one target with the run's runner.
type actionFunc func(ctx context.Context, r *action.Runner, t *muster.Target, opts action.Options) *muster.Result

// runAction resolves the targets, fans fn out over them and prints the
// results. It returns errFailedRun when any target failed.
func (a *app) runAction(c *cobra.Command, name, object string, fn actionFunc) error {
	opts, rolling, err := a.runSettings()
	if err != nil {
		return err
	}
	rerun, err := a.applyRerun()
	if err != nil {
		return err
	}
	var targets []*muster.Target
	if rerun == 0 {
		// As in Bolt, a rerun of nothing acts on no target.
		a.warnf("--rerun %s: the last run recorded no target with that status; nothing to do", a.flags.rerun)
	} else if _, targets, err = a.resolveTargets(c); err != nil {
		return err
	}
	if opts.SudoPassword, err = a.flags.sudoPassword(); err != nil {
		return err
	}
	runner, closeRunner := a.newRunner()
	defer closeRunner()

	printer, stream := a.printer(len(targets))
	if stream != nil {
		opts.Stream = stream.Writers
	}
	start := time.Now()
	results := executor.Run(c.Context(), targets, executor.Options{
		Concurrency: a.flags.concurrency,
		Timeout:     a.flags.timeout,
		Rolling:     rolling,
		Started:     printer.Started,
		Finished:    printer.Result,
	}, name, object, func(ctx context.Context, t *muster.Target) *muster.Result {
		res := fn(ctx, runner, t, opts)
		runner.Release(t)
		return res
	})
	cleanupCtx, cancelCleanup := context.WithTimeout(context.WithoutCancel(c.Context()), 30*time.Second)
	runner.Cleanup(cleanupCtx)
	cancelCleanup()
	a.saveRerun(results)
	if err := printer.Finish(results, time.Since(start), a.interrupted.Load()); err != nil {
		return err
	}
	for _, r := range results {
		if !r.OK() {
			return errFailedRun
		}
	}
	return nil
}

// runSettings checks the flags every run shares (format, concurrency,
// timeout, environment, rolling) and returns the action options, without
// the sudo password, which is asked for only once the targets resolve.
func (a *app) runSettings() (action.Options, *executor.Rolling, error) {
	if err := a.checkFormat(); err != nil {
		return action.Options{}, nil, err
	}
	if a.flags.concurrency < 1 {
		return action.Options{}, nil, usagef("--concurrency must be at least 1, got %d", a.flags.concurrency)
	}
	if a.flags.timeout < 0 {
		return action.Options{}, nil, usagef("--timeout must be positive, got %s", a.flags.timeout)
	}
	env, err := a.flags.env()
	if err != nil {
		return action.Options{}, nil, err
	}
	rolling, err := a.flags.rolling()
	if err != nil {
		return action.Options{}, nil, err
	}
	return action.Options{Env: env, RunAs: a.flags.runAs, TmpDir: a.flags.tmpdir}, rolling, nil
}

func (a *app) checkFormat() error {
	switch a.flags.format {
	case "human", "json":
		return nil
	}
	return usagef("--format %q: use human or json", a.flags.format)
}

// printer picks the output for this run: JSON, or human text with colour
// and a progress bar only on a terminal (and colour never with NO_COLOR).
func (a *app) printer(total int) (output.Printer, *output.Stream) {
	if a.flags.format == "json" {
		var stream *output.Stream
		if a.flags.stream {
			stream = output.NewStream(a.stderr, nil)
		}
		return output.NewJSON(a.stdout), stream
	}
	ho, bar := a.humanOptions(total)
	ho.Streamed = a.flags.stream
	var stream *output.Stream
	if a.flags.stream {
		stream = output.NewStream(a.stdout, clearOf(bar))
	}
	return output.NewHuman(a.stdout, ho), stream
}

// humanOptions are the human format's options on this terminal: colour
// only on a terminal and never with NO_COLOR or TERM=dumb, and for more
// than one target a progress bar on stderr when both streams are
// terminals (bar is nil otherwise).
func (a *app) humanOptions(total int) (o output.HumanOptions, bar *output.ProgressBar) {
	outTTY := isTerminal(a.stdout)
	o.Color = outTTY && os.Getenv("NO_COLOR") == "" && os.Getenv("TERM") != "dumb"
	o.Verbose = a.flags.verbose
	if outTTY && isTerminal(a.stderr) && total > 1 {
		bar = output.NewProgressBar(a.stderr, total, o.Color)
		o.Bar = bar
	}
	return o, bar
}

// clearOf returns the function that clears bar's line, nil without a bar.
func clearOf(bar *output.ProgressBar) func() {
	if bar == nil {
		return nil
	}
	return bar.Clear
}

func isTerminal(w any) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// newRunner wires the transports: one SSH pool for the whole invocation,
// so every action and plan step reuses its connections.
//
// The CLI's run never retries a failed SSH authentication; the server
// passes its --auth-retry-after, so later jobs try a fixed key again.
//
// Without options (the CLI's runs), the command line's connection flags
// override every target's SSH settings, and --log-level debug shows each
// connection's endpoint and credentials' sources (never a secret).
func (a *app) newRunner(sshOpts ...ssh.Options) (*action.Runner, func()) {
	var o ssh.Options
	if len(sshOpts) > 0 {
		o = sshOpts[0]
	} else {
		o.Override = a.flags.sshOverride()
		if a.flags.logLevel <= levelDebug {
			o.Logf = a.debugf
		}
	}
	sshTransport := ssh.New(o)
	return &action.Runner{Transports: map[string]muster.Transport{"ssh": sshTransport, "local": local.New()}},
		func() { sshTransport.Close() }
}
