package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/muster-run/muster/internal/engine"
	"github.com/muster-run/muster/internal/executor"
)

// globalFlags hold every flag value of one invocation.
type globalFlags struct {
	project       string
	inventoryFile string
	modulepath    string
	format        string
	verbose       bool
	logLevel      logLevel

	targets     []string
	concurrency int
	timeout     time.Duration
	stream      bool

	runAs              string
	sudoPasswordPrompt bool
	envVars            []string
	tmpdir             string

	user           string
	port           int
	privateKey     string
	passwordPrompt bool
	hostKeyCheck   bool
	noHostKeyCheck bool
	knownHosts     string
	connectTimeout int
	transport      string

	rerun       string
	noSaveRerun bool

	// conn caches the connection settings read from the flags (the
	// password is asked for once): the inventory's defaults and the SSH
	// transport's overrides.
	conn *connSettings

	batch       string
	canary      int
	maxFailures string
	pause       time.Duration
}

func (f *globalFlags) registerGlobal(root *cobra.Command) {
	p := root.PersistentFlags()
	p.StringVar(&f.project, "project", "", "project directory (default: $MUSTER_PROJECT, or the nearest directory upwards with muster-project.yaml or bolt-project.yaml, or the current directory)")
	p.StringVarP(&f.inventoryFile, "inventoryfile", "i", "", "inventory file (default: inventory.yaml in the project directory)")
	p.StringVarP(&f.modulepath, "modulepath", "m", "", "directories holding modules, separated by ':' (default: modules and site-modules in the project directory)")
	p.StringVar(&f.format, "format", "human", "output format: human or json (Bolt's JSON shape)")
	p.BoolVarP(&f.verbose, "verbose", "v", false, "show more output: 'Started on' lines, each target's result in plans, warnings about unknown keys")
	f.logLevel = levelWarn
	p.Var(&f.logLevel, "log-level", "messages to print on stderr, as Bolt's --log-level: trace, debug (each SSH connection's user, address, key and known_hosts files), info, warn (default: warnings), error or fatal (no warnings)")
}

// registerTargets adds -t.
func (f *globalFlags) registerTargets(c *cobra.Command) {
	c.Flags().StringArrayVarP(&f.targets, "targets", "t", nil, "targets to act on: groups, names, aliases, globs or URIs, comma-separated; repeatable; @file reads them from a file")
}

// registerRun adds the flags of actions that touch targets.
func (f *globalFlags) registerRun(c *cobra.Command, envVars bool) {
	fl := c.Flags()
	f.registerTargets(c)
	fl.IntVarP(&f.concurrency, "concurrency", "c", engine.DefaultConcurrency, "most targets acted on at once (a sliding window)")
	fl.DurationVar(&f.timeout, "timeout", 0, "limit for each target's action, e.g. 30s or 5m (default: none)")
	fl.BoolVar(&f.stream, "stream", false, "print output live, each line prefixed with its target's name")
	fl.StringVar(&f.runAs, "run-as", "", "run as this user through sudo (skipped when it is the login user)")
	fl.BoolVar(&f.sudoPasswordPrompt, "sudo-password-prompt", false, "ask for the sudo password on the terminal (or set MUSTER_SUDO_PASSWORD)")
	fl.StringVar(&f.tmpdir, "tmpdir", "", "directory on the target for temporary files (default /tmp)")
	fl.StringVarP(&f.user, "user", "u", "", "SSH login user; overrides the inventory (a user in a target's URI still wins)")
	fl.IntVar(&f.port, "port", 0, "SSH port; overrides the inventory (a port in a target's URI still wins)")
	fl.StringVar(&f.privateKey, "private-key", "", "SSH private key file; overrides the inventory")
	fl.BoolVar(&f.passwordPrompt, "password-prompt", false, "ask for the SSH password on the terminal (or set MUSTER_PASSWORD); overrides the inventory")
	fl.BoolVar(&f.hostKeyCheck, "host-key-check", true, "check host keys against known_hosts; --host-key-check=false skips the check; overrides the inventory")
	fl.BoolVar(&f.noHostKeyCheck, "no-host-key-check", false, "do not check host keys (Bolt's spelling of --host-key-check=false)")
	fl.StringVar(&f.knownHosts, "known-hosts", "", "check host keys against this known_hosts file only (the inventory's ssh known-hosts setting); overrides the inventory")
	fl.IntVar(&f.connectTimeout, "connect-timeout", 0, "seconds to wait for a connection (default 10); overrides the inventory")
	fl.StringVar(&f.transport, "transport", "", "transport for targets that name none: ssh (default) or local")
	fl.StringVar(&f.rerun, "rerun", "", "act on the targets of the last run instead of -t: failure, success or all (from the project's .rerun.json)")
	fl.BoolVar(&f.noSaveRerun, "no-save-rerun", false, "do not record this run's targets and statuses in .rerun.json")
	fl.StringVar(&f.batch, "batch", "", "rolling run: at most this many targets (5) or this share of them (10%) at once")
	fl.IntVar(&f.canary, "canary", 0, "run this many targets first, alone; if any fails, start no others")
	fl.StringVar(&f.maxFailures, "max-failures", "", "stop starting targets once more than this many (2) or this share (10%) have failed")
	fl.DurationVar(&f.pause, "pause", 0, "with --batch, wait this long before each new batch")
	if envVars {
		fl.StringArrayVar(&f.envVars, "env-var", nil, "environment variable K=V for the command; repeatable")
	}
}

// connSettings are the connection flags, read once per invocation.
type connSettings struct {
	defaults map[string]any // the inventory's lowest-precedence config
	override map[string]any // the SSH transport's Override
}

// defaults turns the connection flags into the inventory's
// lowest-precedence config, so that targets the inventory leaves unset
// (and ad-hoc targets) take them.
func (f *globalFlags) defaults(c *cobra.Command) (map[string]any, error) {
	cs, err := f.connection(c)
	if err != nil {
		return nil, err
	}
	return cs.defaults, nil
}

// sshOverride returns the SSH settings given on the command line, which
// override the inventory's (see ssh.Options.Override); nil for none or
// before the flags were read.
func (f *globalFlags) sshOverride() map[string]any {
	if f.conn == nil {
		return nil
	}
	return f.conn.override
}

// connection reads and checks the connection flags once: a password is
// asked for only the first time.
func (f *globalFlags) connection(c *cobra.Command) (*connSettings, error) {
	if f.conn != nil {
		return f.conn, nil
	}
	ssh := map[string]any{}
	cfg := map[string]any{}
	set := func(name string) bool { return c.Flags().Lookup(name) != nil && c.Flags().Changed(name) }
	if f.user != "" {
		ssh["user"] = f.user
	}
	if set("port") || f.port != 0 {
		if f.port < 1 || f.port > 65535 {
			return nil, usagef("--port %d is out of range 1-65535", f.port)
		}
		ssh["port"] = f.port
	}
	if f.privateKey != "" {
		if _, err := os.Stat(f.privateKey); err != nil {
			return nil, usagef("--private-key: %v", err)
		}
		ssh["private-key"] = f.privateKey
	}
	if f.noHostKeyCheck && set("host-key-check") && f.hostKeyCheck {
		return nil, usagef("--no-host-key-check and --host-key-check contradict each other: give one")
	}
	switch {
	case f.noHostKeyCheck:
		ssh["host-key-check"] = false
	case set("host-key-check"):
		ssh["host-key-check"] = f.hostKeyCheck
	}
	if f.knownHosts != "" {
		if f.noHostKeyCheck || !f.hostKeyCheck {
			return nil, usagef("--known-hosts needs the host key check: drop --no-host-key-check")
		}
		abs, err := filepath.Abs(f.knownHosts)
		if err == nil {
			_, err = os.Stat(abs)
		}
		if err != nil {
			return nil, usagef("--known-hosts: %v", err)
		}
		ssh["known-hosts"] = abs
	}
	if f.connectTimeout < 0 {
		return nil, usagef("--connect-timeout must be positive, got %d", f.connectTimeout)
	}
	if f.connectTimeout > 0 {
		ssh["connect-timeout"] = f.connectTimeout
	}
	if f.passwordPrompt || os.Getenv("MUSTER_PASSWORD") != "" {
		pw, err := readSecret("MUSTER_PASSWORD", "SSH password: ", f.passwordPrompt)
		if err != nil {
			return nil, err
		}
		ssh["password"] = pw
	}
	switch f.transport {
	case "", "ssh", "local":
		if f.transport != "" {
			cfg["transport"] = f.transport
		}
	default:
		return nil, usagef("--transport %q: use ssh or local", f.transport)
	}
	if len(ssh) > 0 {
		cfg["ssh"] = ssh
	}
	override := make(map[string]any, len(ssh))
	for k, v := range ssh {
		override[k] = v
	}
	f.conn = &connSettings{defaults: cfg, override: override}
	return f.conn, nil
}

// env parses --env-var K=V flags.
func (f *globalFlags) env() (map[string]string, error) {
	if len(f.envVars) == 0 {
		return nil, nil
	}
	env := make(map[string]string, len(f.envVars))
	for _, kv := range f.envVars {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, usagef("--env-var %q: want NAME=VALUE", kv)
		}
		env[k] = v
	}
	return env, nil
}

// sudoPassword returns the sudo password from the prompt or the environment.
func (f *globalFlags) sudoPassword() (string, error) {
	if !f.sudoPasswordPrompt && os.Getenv("MUSTER_SUDO_PASSWORD") == "" {
		return "", nil
	}
	return readSecret("MUSTER_SUDO_PASSWORD", "sudo password: ", f.sudoPasswordPrompt)
}

// secret reads a secret from the terminal without echo when prompt is set,
// else from the named environment variable.
func readSecret(envName, label string, prompt bool) (string, error) {
	if !prompt {
		return os.Getenv(envName), nil
	}
	fd := int(os.Stdin.Fd())
	if !term.IsTerminal(fd) {
		// Without a terminal to ask on, a value in the environment answers
		// the prompt: scripts can keep the flag and set the variable.
		if v, ok := os.LookupEnv(envName); ok && v != "" {
			return v, nil
		}
		return "", usagef("cannot prompt for %s: standard input is not a terminal (set %s instead)", strings.TrimSuffix(label, ": "), envName)
	}
	fmt.Fprint(os.Stderr, label)
	b, err := term.ReadPassword(fd)
	fmt.Fprintln(os.Stderr)
	if err != nil {
		return "", fmt.Errorf("reading %s: %w", strings.TrimSuffix(label, ": "), err)
	}
	return string(b), nil
}

// rolling turns --batch, --canary, --max-failures and --pause into the
// executor's rolling options, or nil when none is set.
func (f *globalFlags) rolling() (*executor.Rolling, error) {
	if f.batch == "" && f.canary == 0 && f.maxFailures == "" && f.pause == 0 {
		return nil, nil
	}
	r := &executor.Rolling{MaxFailures: executor.NoLimit, Canary: f.canary, Pause: f.pause}
	if f.canary < 0 {
		return nil, usagef("--canary must be 0 or more, got %d", f.canary)
	}
	if f.pause < 0 {
		return nil, usagef("--pause must be positive, got %s", f.pause)
	}
	if f.batch != "" {
		n, pct, err := executor.ParseCount("--batch", f.batch)
		if err != nil {
			return nil, inputError{err}
		}
		if n == 0 && pct == 0 {
			return nil, usagef("--batch must be at least 1")
		}
		r.Size, r.Percent = n, pct
	}
	if f.maxFailures != "" {
		n, pct, err := executor.ParseCount("--max-failures", f.maxFailures)
		if err != nil {
			return nil, inputError{err}
		}
		r.MaxFailures, r.MaxFailuresPercent = n, pct
	}
	return r, nil
}

// logLevel is --log-level: which messages print on stderr, with Bolt's
// level names.
type logLevel int

const (
	levelTrace logLevel = iota
	levelDebug
	levelInfo
	levelWarn
	levelError
	levelFatal
)

var (
	logLevelNames = []string{"trace", "debug", "info", "warn", "error", "fatal"}
	logPrefixes   = []string{"Trace", "Debug", "Info", "Warning", "Error", "Fatal"}
)

func (l *logLevel) String() string {
	if int(*l) < len(logLevelNames) {
		return logLevelNames[*l]
	}
	return "warn"
}

// Set accepts Bolt's level names, in any case ("warning" too).
func (l *logLevel) Set(s string) error {
	s = strings.ToLower(strings.TrimSpace(s))
	if s == "warning" {
		s = "warn"
	}
	for i, n := range logLevelNames {
		if s == n {
			*l = logLevel(i)
			return nil
		}
	}
	return fmt.Errorf("use %s", strings.Join(logLevelNames, ", "))
}

func (l *logLevel) Type() string { return "level" }

// logMu serialises messages from concurrent connections.
var logMu sync.Mutex

// logf prints a message of level at on stderr when --log-level lets it
// through, prefixed with its level ("Debug: ...").
func (a *app) logf(at logLevel, format string, args ...any) {
	if at < a.flags.logLevel {
		return
	}
	msg := fmt.Sprintf("%s: %s\n", logPrefixes[at], fmt.Sprintf(format, args...))
	logMu.Lock()
	defer logMu.Unlock()
	io.WriteString(a.stderr, msg)
}

// warnf prints a warning unless --log-level is error or fatal.
func (a *app) warnf(format string, args ...any) { a.logf(levelWarn, format, args...) }

// debugf prints a debug message with --log-level debug or trace.
func (a *app) debugf(format string, args ...any) { a.logf(levelDebug, format, args...) }
