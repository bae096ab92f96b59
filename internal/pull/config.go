package pull

import (
	"path"
	"slices"
	"time"

	"github.com/muster-run/muster/internal/yamlnode"
)

// FileName is the pull configuration's file in the project directory. It
// reloads without a restart, like the inventory: the project reads it
// again, calls Parse, and hands the result to Scheduler.Reload.
const FileName = "pull.yaml"

// Defaults of the optional settings.
const (
	DefaultInterval          = 30 * time.Minute
	DefaultUtilisation       = 0.8
	DefaultMaxCheckIn        = 5 * time.Minute
	DefaultRetryMin          = 5 * time.Second
	DefaultRetryMax          = time.Minute
	DefaultTimeout           = time.Hour
	DefaultFactsUploadEvery  = time.Hour
	DefaultPuppetCommand     = `puppet agent --test --server "$MUSTER_BACKEND"`
	maxSuccessCode           = 255
	defaultPuppetChangedCode = 2
)

// Config is a parsed pull.yaml. Parse fills in every default, so all
// durations are positive and Runs ends with an entry that matches every
// node when the file declares none.
type Config struct {
	// File is the path Parse was given, for messages.
	File string
	// Interval is the target interval between a node's runs.
	Interval time.Duration
	// Floor and Ceiling bound the effective interval: it shortens toward
	// Floor while capacity is free and stretches toward Ceiling while it
	// is short. Both default to Interval (a fixed interval).
	Floor, Ceiling time.Duration
	// Utilisation is the share of backend capacity the interval
	// controller aims to use, in (0, 1] (key target_utilisation).
	Utilisation float64
	// MaxCheckIn is the longest a node is told to wait before checking in
	// again, so that it learns of interval changes and new settings.
	MaxCheckIn time.Duration
	// RetryMin and RetryMax bound the random retry-after given to a due
	// node that does not fit (key retry_after: {min, max}).
	RetryMin, RetryMax time.Duration
	// Backends are where runs take their work from; at least one.
	Backends []Backend
	// Runs say what a node runs; the first entry whose Match matches
	// wins. An entry without a match matches every node.
	Runs []Run
	// Facts says how often nodes upload facts and which to drop.
	Facts Facts
	// Rollouts add environment flags to the runs of a share of nodes.
	Rollouts []Rollout
}

// Backend is one source of capacity.
type Backend struct {
	// Name names the backend; runs see it as MUSTER_BACKEND, so for a
	// server it is normally the host name the command connects to.
	Name string
	// MaxRunning is how many runs may use the backend at once (>= 1).
	MaxRunning int
	// Rate caps run starts per second; 0 means no rate limit.
	Rate float64
	// Health is the backend's health probe, or nil for none.
	Health *Health
	// Line is where the backend is declared.
	Line int
}

// Health is a backend's health probe: the server fetches URL, and the
// backend takes no new runs while the probe fails or while the load it
// reports is above MaxLoad (0: load is not checked).
type Health struct {
	URL     string
	MaxLoad float64
}

// Match selects nodes by certname glob (path.Match syntax) or by
// inventory group. The zero Match matches every node.
type Match struct {
	Glob  string
	Group string
}

// Any reports whether m matches every node.
func (m Match) Any() bool { return m.Glob == "" && m.Group == "" }

// Matches reports whether m selects the node with the given certname and
// inventory groups.
func (m Match) Matches(certname string, groups []string) bool {
	switch {
	case m.Glob != "":
		ok, _ := path.Match(m.Glob, certname)
		return ok
	case m.Group != "":
		return slices.Contains(groups, m.Group)
	}
	return true
}

// Run is what the matched nodes run, and how.
type Run struct {
	Match Match
	// Command is a shell command (Task is empty), such as
	// `puppet agent -t --server "$MUSTER_BACKEND"`.
	Command string
	// Task is a muster task to run instead of a command, with Params.
	Task   string
	Params map[string]any
	// SuccessCodes are the exit codes that count as success (default 0;
	// 0 and 2 for the default Puppet command, whose 2 means "changed").
	SuccessCodes []int
	// Watch are files whose change forces a run.
	Watch []string
	// Env is added to the run's environment.
	Env map[string]string
	// Timeout ends the run.
	Timeout time.Duration
	// Line is where the entry is declared (0 for the built-in default).
	Line int
}

// Succeeded reports whether exit code code counts as success.
func (r *Run) Succeeded(code int) bool { return slices.Contains(r.SuccessCodes, code) }

// Facts configures fact uploads between runs.
type Facts struct {
	// UploadEvery is how often a node uploads its facts.
	UploadEvery time.Duration
	// Blacklist holds globs of fact names to drop (always-changing facts
	// such as uptime).
	Blacklist []string
}

// Dropped reports whether the fact name is blacklisted.
func (f *Facts) Dropped(name string) bool {
	for _, g := range f.Blacklist {
		if ok, _ := path.Match(g, name); ok {
			return true
		}
	}
	return false
}

// Rollout sets Env on the runs of Percent percent of the nodes Match
// selects, chosen by a hash of the rollout's name and the certname: the
// same nodes every time, and a node chosen at 5% stays chosen at 10%.
type Rollout struct {
	Name    string
	Percent float64
	Env     map[string]string
	Match   Match
	Line    int
}

// Includes reports whether the rollout applies to the node.
func (r *Rollout) Includes(certname string, groups []string) bool {
	if !r.Match.Matches(certname, groups) {
		return false
	}
	return Phase(r.Name+"\x00"+certname)*100 < r.Percent
}

// Error is a problem in a pull.yaml, at a line when known.
type Error = yamlnode.Error

// invalid wraps err as a muster invalid-input error with its file and
// line, as the inventory does.
func invalid(err error) error { return yamlnode.Invalid(err) }

// defaultRun is the entry used when the file declares no runs.
func defaultRun() Run {
	return Run{
		Command:      DefaultPuppetCommand,
		SuccessCodes: []int{0, defaultPuppetChangedCode},
		Timeout:      DefaultTimeout,
	}
}

// RunFor returns the first run entry that matches the node, or nil.
func (c *Config) RunFor(certname string, groups []string) *Run {
	for i := range c.Runs {
		if c.Runs[i].Match.Matches(certname, groups) {
			return &c.Runs[i]
		}
	}
	return nil
}
