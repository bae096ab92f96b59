package pull

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/muster-run/muster"
)

const fullConfig = `interval: 30m
floor: 10m
ceiling: 2h
target_utilisation: 0.7
max_checkin: 2m
retry_after: {min: 10s, max: 90}
backends:
  - name: puppet1.example.com
    max_running: 1000
    rate: 50
    health: {url: "https://puppet1:8140/status/v1/simple", max_load: 0.9}
  - {name: puppet2.example.com, max_running: 4}
runs:
  - match: {glob: 'web*'}
    command: puppet agent -t --server "$MUSTER_BACKEND"
    success_codes: [0, 2]
    watch: [/etc/sudoers, /etc/ssh/sshd_config]
    env: {FACTER_X: 1}
    timeout: 20m
  - match: {group: databases}
    task: site::converge
    params: {noop: true}
  - command: /usr/local/bin/converge
facts:
  upload_every: 15m
  blacklist: [uptime*, memoryfree*]
rollouts:
  - name: facter-update
    percent: 5
    env: {FACTER_UPDATE_FLAG: "true"}
  - name: canary
    percent: 50
    match: {group: canary}
    env: {CANARY: yes}
`

func TestParseFull(t *testing.T) {
	c, err := Parse("pull.yaml", []byte(fullConfig))
	if err != nil {
		t.Fatal(err)
	}
	want := &Config{
		File: "pull.yaml", Interval: 30 * time.Minute, Floor: 10 * time.Minute, Ceiling: 2 * time.Hour,
		Utilisation: 0.7, MaxCheckIn: 2 * time.Minute, RetryMin: 10 * time.Second, RetryMax: 90 * time.Second,
		Backends: []Backend{
			{Name: "puppet1.example.com", MaxRunning: 1000, Rate: 50, Health: &Health{URL: "https://puppet1:8140/status/v1/simple", MaxLoad: 0.9}, Line: 8},
			{Name: "puppet2.example.com", MaxRunning: 4, Line: 12},
		},
		Runs: []Run{
			{Match: Match{Glob: "web*"}, Command: `puppet agent -t --server "$MUSTER_BACKEND"`, SuccessCodes: []int{0, 2},
				Watch: []string{"/etc/sudoers", "/etc/ssh/sshd_config"}, Env: map[string]string{"FACTER_X": "1"}, Timeout: 20 * time.Minute, Line: 14},
			{Match: Match{Group: "databases"}, Task: "site::converge", Params: map[string]any{"noop": true}, SuccessCodes: []int{0}, Timeout: DefaultTimeout, Line: 20},
			{Command: "/usr/local/bin/converge", SuccessCodes: []int{0}, Timeout: DefaultTimeout, Line: 23},
		},
		Facts: Facts{UploadEvery: 15 * time.Minute, Blacklist: []string{"uptime*", "memoryfree*"}},
		Rollouts: []Rollout{
			{Name: "facter-update", Percent: 5, Env: map[string]string{"FACTER_UPDATE_FLAG": "true"}, Line: 28},
			{Name: "canary", Percent: 50, Match: Match{Group: "canary"}, Env: map[string]string{"CANARY": "yes"}, Line: 31},
		},
	}
	if d := cmp.Diff(want, c); d != "" {
		t.Errorf("Parse (-want +got):\n%s", d)
	}
	if r := c.RunFor("web3", nil); r == nil || r.Line != 14 || !r.Succeeded(2) || r.Succeeded(1) {
		t.Errorf("RunFor(web3) = %+v", r)
	}
	if r := c.RunFor("db1", []string{"all", "databases"}); r == nil || r.Task != "site::converge" {
		t.Errorf("RunFor(db1 in databases) = %+v", r)
	}
	if r := c.RunFor("mail1", nil); r == nil || r.Line != 23 {
		t.Errorf("RunFor(mail1) = %+v, want the default entry", r)
	}
	if !c.Facts.Dropped("uptime_seconds") || c.Facts.Dropped("os") {
		t.Error("facts blacklist does not match")
	}
}

func TestParseDefaults(t *testing.T) {
	c, err := Parse("pull.yaml", []byte("backends: [{name: p, max_running: 2}]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Interval != DefaultInterval || c.Floor != c.Interval || c.Ceiling != c.Interval {
		t.Errorf("interval %s floor %s ceiling %s, want %s for all", c.Interval, c.Floor, c.Ceiling, DefaultInterval)
	}
	if c.Utilisation != DefaultUtilisation || c.MaxCheckIn != DefaultMaxCheckIn || c.RetryMin != DefaultRetryMin ||
		c.RetryMax != DefaultRetryMax || c.Facts.UploadEvery != DefaultFactsUploadEvery {
		t.Errorf("defaults not filled in: %+v", c)
	}
	if len(c.Runs) != 1 || c.Runs[0].Command != DefaultPuppetCommand || !c.Runs[0].Succeeded(2) || c.Runs[0].Timeout != DefaultTimeout {
		t.Errorf("default run = %+v", c.Runs)
	}
	// Only a ceiling: the floor stays at the interval.
	c, err = Parse("pull.yaml", []byte("interval: 20m\nceiling: 1h\nbackends: [{name: p, max_running: 2}]\n"))
	if err != nil || c.Floor != 20*time.Minute || c.Ceiling != time.Hour {
		t.Errorf("floor %s ceiling %s err %v", c.Floor, c.Ceiling, err)
	}
}

func TestParseErrors(t *testing.T) {
	b := "backends: [{name: p, max_running: 2}]\n"
	for _, tc := range []struct{ name, in, want string }{
		{"empty", "", "pull.yaml: is empty"},
		{"syntax", "interval: 30m\nbackends: [\n", "pull.yaml:2: invalid YAML"},
		{"not a mapping", "- a\n", "pull.yaml:1: the file must be a mapping"},
		{"unknown key", "interval: 30m\nintervall: 5m\n" + b, `pull.yaml:2: the file: unknown key "intervall"`},
		{"duplicate key", "interval: 30m\ninterval: 5m\n" + b, "pull.yaml:2: the file: duplicate key \"interval\" (first at line 1)"},
		{"bad duration", "interval: soon\n" + b, `pull.yaml:1: interval: "soon" is not a duration`},
		{"negative duration", "interval: -5m\n" + b, "pull.yaml:1: interval must be positive"},
		{"zero duration", "max_checkin: 0\n" + b, "pull.yaml:1: max_checkin must be positive"},
		{"floor above interval", "interval: 10m\nfloor: 20m\n" + b, "pull.yaml:2: floor 20m0s is longer than the interval"},
		{"ceiling below interval", "interval: 10m\n\nceiling: 5m\n" + b, "pull.yaml:3: ceiling 5m0s is shorter"},
		{"utilisation", "target_utilisation: 1.5\n" + b, "pull.yaml:1: target_utilisation must be in (0, 1]"},
		{"retry order", "retry_after: {min: 2m, max: 1m}\n" + b, "pull.yaml:1: retry_after: min 2m0s is longer than max"},
		{"no backends", "interval: 30m\n", "pull.yaml: at least one backend is required"},
		{"empty backends", "backends: []\n", "pull.yaml:1: at least one backend is required"},
		{"backend name", "backends:\n  - max_running: 3\n", "pull.yaml:2: backends[0] needs a name"},
		{"backend max_running missing", "backends:\n  - name: a\n", `pull.yaml:2: backend "a" needs max_running`},
		{"backend max_running 0", "backends:\n  - name: a\n    max_running: 0\n", "pull.yaml:3: backends[0].max_running must be at least 1"},
		{"backend max_running text", "backends:\n  - name: a\n    max_running: lots\n", "pull.yaml:3: backends[0].max_running must be an integer"},
		{"backend rate", "backends:\n  - {name: a, max_running: 1, rate: -2}\n", "pull.yaml:2: backends[0].rate must be positive"},
		{"duplicate backend", "backends:\n  - {name: a, max_running: 1}\n  - {name: a, max_running: 1}\n", `pull.yaml:3: backend "a" is declared twice (first at line 2)`},
		{"health url", "backends:\n  - name: a\n    max_running: 1\n    health: {max_load: 2}\n", "pull.yaml:4: backends[0].health needs a url"},
		{"success code range", b + "runs:\n  - command: x\n    success_codes: [0, 256]\n", "pull.yaml:4: runs[0].success_codes: exit code 256 is outside 0..255"},
		{"success code negative", b + "runs:\n  - command: x\n    success_codes: [-1]\n", "pull.yaml:4: runs[0].success_codes: exit code -1 is outside"},
		{"success code twice", b + "runs:\n  - command: x\n    success_codes:\n      - 0\n      - 0\n", "pull.yaml:6: runs[0].success_codes: exit code 0 is listed twice"},
		{"command and task", b + "runs:\n  - command: x\n    task: y\n", "pull.yaml:3: runs[0] needs exactly one of command or task"},
		{"neither", b + "runs:\n  - watch: [/etc/x]\n", "pull.yaml:3: runs[0] needs exactly one of command or task"},
		{"match both", b + "runs:\n  - match: {glob: a, group: b}\n    command: x\n", "pull.yaml:3: runs[0].match needs exactly one of glob or group"},
		{"bad glob", b + "runs:\n  - match: {glob: 'web['}\n    command: x\n", `pull.yaml:3: runs[0].match.glob: "web[" is not a valid glob`},
		{"unreachable", b + "runs:\n  - command: x\n  - command: y\n", "pull.yaml:4: runs[1] is never used: the entry at line 3"},
		{"relative watch", b + "runs:\n  - command: x\n    watch: [etc/x]\n", `pull.yaml:4: runs[0].watch: "etc/x" is not an absolute path`},
		{"reserved env", b + "runs:\n  - command: x\n    env: {MUSTER_BACKEND: a}\n", "pull.yaml:4: runs[0].env: MUSTER_BACKEND is reserved"},
		{"bad env name", b + "runs:\n  - command: x\n    env: {'A-B': a}\n", `pull.yaml:4: runs[0].env: "A-B" is not an environment variable name`},
		{"params with command", b + "runs:\n  - command: x\n    params: {a: 1}\n", "pull.yaml:3: runs[0]: params go with a task"},
		{"facts", b + "facts:\n  upload_every: often\n", `pull.yaml:3: facts.upload_every: "often" is not a duration`},
		{"rollout percent", b + "rollouts:\n  - name: r\n    percent: 120\n    env: {A: b}\n", "pull.yaml:4: rollouts[0].percent must be in 0..100"},
		{"rollout env", b + "rollouts:\n  - name: r\n    percent: 5\n", `pull.yaml:3: rollout "r" needs env`},
		{"rollout twice", b + "rollouts:\n  - {name: r, percent: 5, env: {A: b}}\n  - {name: r, percent: 5, env: {A: b}}\n", `pull.yaml:4: rollout "r" is declared twice`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("pull.yaml", []byte(tc.in))
			if err == nil {
				t.Fatalf("no error, want %q", tc.want)
			}
			if !strings.HasPrefix(err.Error(), tc.want) {
				t.Errorf("error %q\nwant prefix %q", err, tc.want)
			}
			if muster.KindOf(err) != muster.KindInvalid {
				t.Errorf("kind %q, want %q", muster.KindOf(err), muster.KindInvalid)
			}
			var pe *Error
			if !errors.As(err, &pe) || pe.File != "pull.yaml" {
				t.Errorf("error does not wrap a *pull.Error for the file: %#v", err)
			}
		})
	}
}

func TestRolloutDeterministic(t *testing.T) {
	r := Rollout{Name: "facter-update", Percent: 5, Env: map[string]string{"A": "b"}}
	wider := r
	wider.Percent = 10
	in := 0
	for i := range 20_000 {
		name := "node" + string(rune('a'+i%26)) + strings.Repeat("x", i%7) + string(rune(i))
		got := r.Includes(name, nil)
		if got != r.Includes(name, nil) {
			t.Fatal("not deterministic")
		}
		if got {
			in++
			if !wider.Includes(name, nil) {
				t.Fatalf("%q is in the 5%% rollout but not the 10%% one", name)
			}
		}
	}
	if in < 800 || in > 1200 {
		t.Errorf("5%% of 20,000 chose %d nodes", in)
	}
	g := Rollout{Name: "g", Percent: 100, Match: Match{Group: "canary"}}
	if g.Includes("a", []string{"web"}) || !g.Includes("a", []string{"canary"}) {
		t.Error("rollout match by group is wrong")
	}
}
