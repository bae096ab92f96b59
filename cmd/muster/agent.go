package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/muster-run/muster"
	"github.com/muster-run/muster/internal/action"
	"github.com/muster-run/muster/internal/agent"
	"github.com/muster-run/muster/internal/builtin"
	"github.com/muster-run/muster/internal/checkin"
	"github.com/muster-run/muster/internal/engine"
	"github.com/muster-run/muster/internal/filewatch"
	"github.com/muster-run/muster/internal/inventory"
	"github.com/muster-run/muster/internal/project"
	"github.com/muster-run/muster/internal/transport/local"
)

// agentFlags are muster agent's flags.
type agentFlags struct {
	server, dataDir, certname, token, caFingerprint, factsCommand string
	insecure                                                      bool
	offlineAfter, wait                                            time.Duration
	watch, modulePath                                             []string
}

func (a *app) agentCommand() *cobra.Command {
	var f agentFlags
	c := &cobra.Command{
		Use:   "agent --server HOST:PORT",
		Short: "Run the pull-mode agent: check in with the server and run when it says so",
		Long: `Run muster's agent on this node. It checks in with the server's agent
listener (muster server --agent-listen) over mutual TLS, and runs the
command the server's pull.yaml configures for it when the server says so:
the server spreads every node's runs by capacity, so the agent adds no
splay of its own. A change to a watched file (the server's list, plus
--watch) forces a run within seconds.

On first start the agent makes an ed25519 key and asks for a certificate
with an enrollment token ('muster enroll-token create' on the server). It
trusts the server's CA by its fingerprint (--ca-fingerprint, printed by the
server at start and by 'muster cert ca'). When the token's autosign names
do not cover the certname, the request waits for 'muster cert sign NAME'.

State (key, certificate, the server's CA, a spool of unsent reports) lives
in --data-dir. A report is never lost: while the server is unreachable the
agent retries with jittered backoff and sends its reports later.

When the server asks for facts (pull.yaml's facts.upload_every), the agent
sends its own (os, kernel, networking, processors, memory, uptime, under
Facter's names), with --facts-command's JSON object merged over them:
--facts-command 'facter --json' sends Facter's full set. 'muster node facts
NAME' shows them.

SIGTERM stops a run in progress, spools its report and flushes the spool;
SIGHUP reloads the certificate from --data-dir.`,
		Example: `  muster agent --server muster.example.com:7421 --enroll-token mse_... --ca-fingerprint sha256:3f9a...
  muster agent --server 127.0.0.1:7421 --data-dir /var/lib/muster-agent --certname web1.example.com
  muster agent --server 127.0.0.1:7421 --watch /etc/sudoers --watch /etc/ssh/sshd_config --offline-run-after 2h`,
		Args: noArgs,
		RunE: func(c *cobra.Command, _ []string) error { return a.runAgent(c, f) },
	}
	fl := c.Flags()
	fl.StringVar(&f.server, "server", os.Getenv("MUSTER_AGENT_SERVER"), "the server's agent listener, HOST:PORT (env MUSTER_AGENT_SERVER)")
	fl.StringVar(&f.dataDir, "data-dir", defaultAgentDir(), "the agent's state: key, certificate, CA, report spool")
	fl.StringVar(&f.certname, "certname", "", "this node's name in its certificate (default: the FQDN, lowercased)")
	fl.StringVar(&f.token, "enroll-token", os.Getenv("MUSTER_ENROLL_TOKEN"), "enrollment token for the first start (env MUSTER_ENROLL_TOKEN)")
	fl.StringVar(&f.caFingerprint, "ca-fingerprint", "", "the server's CA fingerprint (sha256:...), checked at first contact")
	fl.BoolVar(&f.insecure, "insecure-first-contact", false, "trust whatever CA the server presents at first contact (logged loudly); later contacts check it")
	fl.DurationVar(&f.offlineAfter, "offline-run-after", 0, "when the server has been unreachable this long, run the last command on this node's own slot (0: never)")
	fl.DurationVar(&f.wait, "wait", time.Minute, "how long the server may hold a check-in open (long poll)")
	fl.StringVar(&f.factsCommand, "facts-command", "", "a command printing a JSON object of facts to send besides the agent's own (e.g. 'facter --json')")
	fl.StringSliceVar(&f.modulePath, "modulepath", nil, "directories of modules for pull runs that are tasks (pull.yaml runs: task:), searched before the built-in modules (default: /etc/muster/modules when it exists)")
	fl.StringArrayVar(&f.watch, "watch", nil, "a local file or directory whose change forces a run, besides the server's list (repeatable)")
	return c
}

// defaultAgentDir is /var/lib/muster-agent for root, else under the
// user's data directory.
func defaultAgentDir() string {
	if os.Getuid() == 0 {
		return "/var/lib/muster-agent"
	}
	return filepath.Join(filepath.Dir(defaultDataDir()), "muster-agent")
}

// fqdn is this machine's name, lowercased, for the default certname.
func fqdn() string {
	name, err := os.Hostname()
	if err != nil {
		return ""
	}
	return strings.ToLower(strings.TrimSuffix(name, "."))
}

func (a *app) runAgent(c *cobra.Command, f agentFlags) error {
	if f.server == "" {
		return usagef("'muster agent' needs --server HOST:PORT (the server's --agent-listen address)")
	}
	if f.certname == "" {
		f.certname = fqdn()
	}
	if f.offlineAfter < 0 || f.wait < 0 {
		return usagef("--offline-run-after and --wait must not be negative")
	}
	log := slog.New(slog.NewTextHandler(a.stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	runner, closeRunner := newLocalRunner()
	defer closeRunner()
	ag, err := agent.New(agent.Config{Server: f.server, DataDir: f.dataDir, Certname: f.certname, EnrollToken: f.token,
		CAFingerprint: f.caFingerprint, InsecureFirstContact: f.insecure, Wait: f.wait, OfflineRunAfter: f.offlineAfter,
		ExtraWatch: f.watch, FactsCommand: f.factsCommand,
		KeepResident: os.Getenv("MUSTER_AGENT_KEEP_RESIDENT") == "1", Exec: agentExec(runner, f.certname, agentTasks(f.dataDir, f.modulePath, log)),
		Watch: watchPaths, Logger: log})
	if err != nil {
		return usageError{err}
	}
	a.serving.Store(true) // a signal is a graceful stop
	ctx := c.Context()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() { // ends with the process: it only reloads
		for range hup {
			if err := ag.Reload(); err != nil {
				log.Warn("reload failed", "err", err)
			} else {
				log.Info("reloaded the certificate")
			}
		}
	}()
	log.Info("muster agent started", "version", muster.Version, "server", f.server, "certname", f.certname, "data_dir", f.dataDir)
	err = ag.Run(ctx)
	log.Info("muster agent stopped")
	if err != nil {
		return err
	}
	if ctx.Err() != nil {
		a.interrupted.Store(false) // a requested stop is a clean exit
	}
	return nil
}

// newLocalRunner is the agent's action runner: this machine only.
func newLocalRunner() (*action.Runner, func()) {
	r := &action.Runner{Transports: map[string]muster.Transport{"local": local.New()}}
	return r, func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		r.Cleanup(ctx)
	}
}

// agentTasks loads the tasks that pull runs may name: the module path
// given (default /etc/muster/modules when it exists), then the built-in
// modules (kept in the agent's data directory). It is loaded at each task run, so modules deployed while the
// agent runs are found.
func agentTasks(dataDir string, modulePath []string, log *slog.Logger) func() (*project.Project, error) {
	if len(modulePath) == 0 {
		if fi, err := os.Stat("/etc/muster/modules"); err == nil && fi.IsDir() {
			modulePath = []string{"/etc/muster/modules"}
		}
	}
	return func() (*project.Project, error) {
		o := project.Options{Dir: os.TempDir(), ModulePath: modulePath}
		if len(modulePath) == 0 {
			o.ModulePath = []string{filepath.Join(os.TempDir(), "muster-agent-no-modules")}
		}
		if dir, err := builtin.Dir(filepath.Join(dataDir, "builtin")); err == nil {
			o.Builtin = dir
		} else {
			log.Warn("the built-in modules are unavailable to pull runs that are tasks", "err", err)
		}
		return project.Load(o)
	}
}

// agentExec runs a pull run through the same engine as the server, with
// the local transport: a command, or a task from tasks' module path, on
// this node.
func agentExec(runner *action.Runner, certname string, tasks func() (*project.Project, error)) agent.Exec {
	empty := &project.Project{Inventory: inventory.Empty(inventory.Options{})}
	return func(ctx context.Context, run checkin.Run, stdout, stderr *agent.TailBuffer) (int, error) {
		env := map[string]string{}
		for k, v := range run.Env {
			env[k] = v
		}
		env["MUSTER_NODE"] = certname
		kind, spec, proj := muster.JobCommand, muster.JobSpec{Command: run.Command, Env: env, LocalTargets: true}, empty
		if run.Task != "" {
			p, err := tasks()
			if err != nil {
				return -1, fmt.Errorf("loading the agent's modules: %w", err)
			}
			kind, spec, proj = muster.JobTask, muster.JobSpec{Task: run.Task, Params: run.Params, Env: env, LocalTargets: true}, p
		}
		raw, err := json.Marshal(spec)
		if err != nil {
			return -1, err
		}
		// The agent runs on its own node by design: local targets are its
		// only targets.
		eng := &engine.Engine{Project: func() *project.Project { return proj }, Runner: runner, Secrets: noSecrets{},
			Options: engine.Options{AllowLocal: true}}
		res := eng.Run(ctx, muster.Run{ID: run.RunID, Node: "localhost", Kind: kind, Spec: raw, Attempt: run.Attempt}, stdout, stderr)
		if code, ok := res.Value["exit_code"].(int); ok {
			return code, nil
		}
		if res.Error != nil {
			if code, ok := res.Error.Details["exit_code"].(int); ok {
				return code, nil
			}
			if kind == muster.JobTask && res.Error.Kind != muster.KindInvalid {
				fmt.Fprintf(stderr, "%s: %s\n", res.Error.Kind, res.Error.Msg)
				return 1, nil // the task ran and failed
			}
			return -1, fmt.Errorf("%s", res.Error.Msg)
		}
		if kind == muster.JobTask && stdout.String() == "" {
			if b, err := json.Marshal(res.Value); err == nil {
				_, _ = stdout.Write(append(b, '\n'))
			}
		}
		return 0, nil
	}
}

// noSecrets is the agent's secret opener: pull runs carry no sealed
// secrets.
type noSecrets struct{}

func (noSecrets) Open(sealed string) (map[string]string, error) {
	if sealed != "" {
		return nil, fmt.Errorf("a pull run carries no sealed secrets")
	}
	return nil, nil
}

// watchPaths watches files and directories with filewatch: existing
// directories as trees, everything else (files, paths not there yet) by
// name.
func watchPaths(ctx context.Context, paths []string, changed func([]string)) error {
	var spec filewatch.Spec
	for _, p := range paths {
		if fi, err := os.Stat(p); err == nil && fi.IsDir() {
			spec.Trees = append(spec.Trees, p)
		} else {
			spec.Files = append(spec.Files, p)
		}
	}
	spec.Debounce = time.Second
	return filewatch.RunPaths(ctx, spec, changed, func(error) {})
}
