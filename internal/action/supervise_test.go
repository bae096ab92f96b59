package action

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/muster-run/muster"
	"github.com/muster-run/muster/internal/task"
	"github.com/muster-run/muster/internal/testkit/sshtest"
	"github.com/muster-run/muster/internal/transport/local"
	"github.com/muster-run/muster/internal/transport/ssh"
)

// patience bounds every wait on a condition in these tests; the machine is
// shared and noisy, so it is generous, and no test asserts a duration.
const patience = 90 * time.Second

// waitFor polls cond until it holds or patience runs out.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(patience)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting %s for %s", patience, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// alive reports whether pid is a live (not zombie) process on this
// machine, where the tests' sshd runs too.
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || !strings.HasPrefix(s[i+1:], " Z")
}

// readPid waits for the pid a remote work wrote into file.
func readPid(t *testing.T, file string) int {
	t.Helper()
	var pid int
	waitFor(t, "the work to write its pid into "+file, func() bool {
		b, err := os.ReadFile(file)
		if err != nil || !strings.HasSuffix(string(b), "\n") {
			return false
		}
		pid, err = strconv.Atoi(strings.TrimSpace(string(b)))
		return err == nil
	})
	return pid
}

// sharedDir returns a fresh directory every user can write to (the
// login user of the test sshd writes pid and marker files there).
func sharedDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "muster-action-test-")
	must(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	must(t, os.Chmod(dir, 0o777))
	return dir
}

// orphanSpec tells TestOrphanHelper what to run before it is killed.
type orphanSpec struct {
	Transport  string // "ssh" or "local"
	Port       int
	User, Key  string
	KnownHosts string
	Action     string // "command", "script" or "task"
	Line       string // the command line or script body
	TaskDir    string
	PidFile    string
	RunAs      string
	Guard      string
	TmpDir     string
}

func (s orphanSpec) runner(t *testing.T) (*Runner, *muster.Target) {
	if s.Transport == "local" {
		return &Runner{Transports: map[string]muster.Transport{"local": local.New()}},
			&muster.Target{Name: "localhost", Transport: "local", Features: []string{"shell"}}
	}
	tr := ssh.New(ssh.Options{KnownHostsFiles: []string{s.KnownHosts}, SSHConfigFile: "none"})
	t.Cleanup(func() { tr.Close() })
	return &Runner{Transports: map[string]muster.Transport{"ssh": tr}},
		&muster.Target{Name: "web1", Transport: "ssh", Host: "127.0.0.1", Port: s.Port, User: s.User, Features: []string{"shell"},
			Config: map[string]any{"ssh": map[string]any{"private-key": s.Key}}}
}

func (s orphanSpec) run(ctx context.Context, t *testing.T, r *Runner, tg *muster.Target) *muster.Result {
	opts := Options{RunAs: s.RunAs, Guard: s.Guard, GuardWait: patience, TmpDir: s.TmpDir}
	if s.RunAs != "" {
		opts.SudoPassword = sshtest.SudoPassword
	}
	switch s.Action {
	case "script":
		return r.Script(ctx, tg, "orphan.sh", []byte(s.Line), nil, opts)
	case "task":
		idx, err := task.Find([]string{s.TaskDir})
		must(t, err)
		tk, err := idx.Get("orphan::sleep")
		must(t, err)
		return r.Task(ctx, tg, &TaskRun{Task: tk, Index: idx, Params: map[string]any{"pidfile": s.PidFile}}, opts)
	}
	return r.Command(ctx, tg, s.Line, opts)
}

// TestOrphanHelper is not a test: TestOrphanedWorkDies runs this test
// binary as a muster client, which runs one action and is then killed.
func TestOrphanHelper(t *testing.T) {
	raw := os.Getenv("MUSTER_ACTION_ORPHAN_HELPER")
	if raw == "" {
		t.Skip("helper process for TestOrphanedWorkDies")
	}
	var s orphanSpec
	must(t, json.Unmarshal([]byte(raw), &s))
	r, tg := s.runner(t)
	res := s.run(context.Background(), t, r, tg)
	t.Fatalf("the action ended before the client was killed: %+v %v", res.Error, res.Value)
}

func sleepTask(t *testing.T) string {
	t.Helper()
	mods := t.TempDir()
	dir := filepath.Join(mods, "orphan", "tasks")
	must(t, os.MkdirAll(dir, 0o755))
	must(t, os.WriteFile(filepath.Join(dir, "sleep.sh"), []byte("#!/bin/sh\ntrap '' TERM\necho $$ >\"$PT_pidfile\"\nexec sleep 300\n"), 0o755))
	must(t, os.WriteFile(filepath.Join(dir, "sleep.json"), []byte(`{"parameters": {"pidfile": {"type": "String"}}}`), 0o644))
	return mods
}

// A client that dies (kill -9: its connection drops without a clean
// channel close) takes its remote work with it, even work that ignores
// SIGTERM, run as another user, or behind a guard; so does cancelling.
func TestOrphanedWorkDies(t *testing.T) {
	s := sshtest.Start(t, sshtest.Options{})
	mods := sleepTask(t)
	const sleeper = "echo $$ >%s; exec sleep 300"
	const stubborn = "trap '' TERM; echo $$ >%s; exec sleep 300"
	tests := []struct {
		name   string
		spec   orphanSpec
		cancel bool // cancel the ctx instead of killing the client
	}{
		{name: "ssh command", spec: orphanSpec{Transport: "ssh", Action: "command", Line: sleeper}},
		{name: "ssh command ignoring TERM", spec: orphanSpec{Transport: "ssh", Action: "command", Line: stubborn}},
		{name: "ssh script", spec: orphanSpec{Transport: "ssh", Action: "script", Line: stubborn}},
		{name: "ssh task", spec: orphanSpec{Transport: "ssh", Action: "task", TaskDir: mods}},
		{name: "ssh command run as root", spec: orphanSpec{Transport: "ssh", Action: "command", Line: stubborn, RunAs: "root"}},
		{name: "ssh command with a guard", spec: orphanSpec{Transport: "ssh", Action: "command", Line: stubborn, Guard: "q1/web1"}},
		{name: "ssh command run as root with a guard", spec: orphanSpec{Transport: "ssh", Action: "command", Line: stubborn, RunAs: "root", Guard: "q1/web1"}},
		{name: "local command", spec: orphanSpec{Transport: "local", Action: "command", Line: stubborn}},
		{name: "local script", spec: orphanSpec{Transport: "local", Action: "script", Line: sleeper}},
		{name: "ssh command cancelled", spec: orphanSpec{Transport: "ssh", Action: "command", Line: stubborn}, cancel: true},
		{name: "ssh command run as root cancelled", spec: orphanSpec{Transport: "ssh", Action: "command", Line: stubborn, RunAs: "root"}, cancel: true},
		{name: "local command cancelled", spec: orphanSpec{Transport: "local", Action: "command", Line: stubborn}, cancel: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			spec := tc.spec
			spec.Port, spec.User, spec.Key, spec.KnownHosts = s.Port, s.User, s.ClientKeyFile, s.KnownHostsFile
			spec.TmpDir = sharedDir(t)
			spec.PidFile = filepath.Join(spec.TmpDir, "pid")
			if strings.Contains(spec.Line, "%s") {
				spec.Line = fmt.Sprintf(spec.Line, quote(spec.PidFile))
			}
			var pid int
			if tc.cancel {
				r, tg := spec.runner(t)
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				done := make(chan *muster.Result, 1)
				go func() { done <- spec.run(ctx, t, r, tg) }()
				pid = readPid(t, spec.PidFile)
				if !alive(pid) {
					t.Fatalf("pid %d is not running before the cancel", pid)
				}
				cancel()
				if res := <-done; res.OK() || res.Error.Kind != muster.KindCancelled {
					t.Errorf("cancelled action: %+v, want kind %s", res.Error, muster.KindCancelled)
				}
			} else {
				raw, err := json.Marshal(spec)
				must(t, err)
				cmd := exec.Command(os.Args[0], "-test.run=^TestOrphanHelper$", "-test.count=1")
				cmd.Env = append(os.Environ(), "MUSTER_ACTION_ORPHAN_HELPER="+string(raw))
				var out strings.Builder
				cmd.Stdout, cmd.Stderr = &out, &out
				must(t, cmd.Start())
				exited := make(chan struct{})
				go func() { _ = cmd.Wait(); close(exited) }()
				t.Cleanup(func() { _ = cmd.Process.Kill(); <-exited })
				pid = readPid(t, spec.PidFile)
				if !alive(pid) {
					t.Fatalf("pid %d is not running before the client is killed", pid)
				}
				select {
				case <-exited:
					t.Fatalf("the client ended on its own:\n%s", out.String())
				default:
				}
				must(t, cmd.Process.Kill()) // SIGKILL: no clean channel close
				<-exited
			}
			waitFor(t, fmt.Sprintf("the remote work (pid %d) to end", pid), func() bool { return !alive(pid) })
		})
	}
}

// guardRunner returns an SSH runner and its target for the guard tests,
// with a temporary directory of the test's own for the lock directories.
func guardRunner(t *testing.T) (*Runner, *muster.Target) {
	r, _, tg, _ := sshRunner(t)
	tg.Config["ssh"].(map[string]any)["tmpdir"] = sharedDir(t)
	return r, tg
}

// Two runs with the same guard never overlap: the second waits for the
// first, which holds the lock until its whole process group is gone.
func TestGuardSerialisesRuns(t *testing.T) {
	r, tg := guardRunner(t)
	dir := sharedDir(t)
	log, release := filepath.Join(dir, "log"), filepath.Join(dir, "release")
	// Each run logs its start, waits for the test's go-ahead, and leaves a
	// background child that logs the end after the run's own shell exited.
	line := func(id string) string {
		return fmt.Sprintf(`echo start %[1]s >>%[2]s; while [ ! -e %[3]s ]; do sleep 0.05; done; (sleep 1.5; echo end %[1]s >>%[2]s) >/dev/null 2>&1 &`,
			id, quote(log), quote(release))
	}
	opts := Options{Guard: "queue-7/web1", GuardWait: patience}
	var wg sync.WaitGroup
	results := make([]*muster.Result, 2)
	wg.Go(func() { results[0] = r.Command(context.Background(), tg, line("1"), opts) })
	waitFor(t, "the first run to start", func() bool { b, _ := os.ReadFile(log); return len(b) > 0 })
	wg.Go(func() { results[1] = r.Command(context.Background(), tg, line("2"), opts) })
	// The second run must be waiting on the lock: an unrelated guard is not.
	other := r.Command(context.Background(), tg, "true", Options{Guard: "queue-7/web2"})
	if !other.OK() {
		t.Fatalf("a run with another guard: %+v", other.Error)
	}
	must(t, os.WriteFile(release, nil, 0o644))
	wg.Wait()
	for i, res := range results {
		if !res.OK() {
			t.Fatalf("run %d: %+v %v", i+1, res.Error, res.Value)
		}
	}
	b, err := os.ReadFile(log)
	must(t, err)
	if got, want := string(b), "start 1\nend 1\nstart 2\nend 2\n"; got != want {
		t.Errorf("log = %q, want %q: the runs overlapped", got, want)
	}
}

// A run whose guard is held for longer than GuardWait fails without
// running, with a message that says why, and the work never inherits the
// lock.
func TestGuardBusyFails(t *testing.T) {
	r, tg := guardRunner(t)
	dir := sharedDir(t)
	started, release, ran := filepath.Join(dir, "started"), filepath.Join(dir, "release"), filepath.Join(dir, "ran")
	opts := Options{Guard: "queue-7/web1", GuardWait: patience}
	first := make(chan *muster.Result, 1)
	go func() {
		first <- r.Command(context.Background(), tg,
			fmt.Sprintf("ls /proc/$$/fd; : >%s; while [ ! -e %s ]; do sleep 0.05; done", quote(started), quote(release)), opts)
	}()
	waitFor(t, "the first run to start", func() bool { _, err := os.Stat(started); return err == nil })

	for _, wait := range []time.Duration{-1, time.Millisecond, time.Second} {
		t.Run(fmt.Sprint("GuardWait=", wait), func(t *testing.T) {
			busy := opts
			busy.GuardWait = wait
			res := r.Command(context.Background(), tg, ": >"+quote(ran), busy)
			if res.OK() || res.Error.Kind != muster.KindNotRun || res.Error.IssueCode != IssueGuardBusy {
				t.Fatalf("second run: %+v, want kind %s, code %s", res.Error, muster.KindNotRun, IssueGuardBusy)
			}
			for _, want := range []string{"another muster run still holds the lock", `"queue-7/web1"`, "web1", "did not end within " + (&guardSpec{wait: wait}).waited().String(), "held by process"} {
				if !strings.Contains(res.Error.Msg, want) {
					t.Errorf("message %q does not say %q", res.Error.Msg, want)
				}
			}
			if strings.Contains(fmt.Sprint(res.Value), "muster-guard-") {
				t.Errorf("the guard's marker shows in the result: %v", res.Value)
			}
			if _, err := os.Stat(ran); err == nil {
				t.Errorf("the refused run ran its work")
			}
		})
	}
	must(t, os.WriteFile(release, nil, 0o644))
	res := <-first
	if !res.OK() {
		t.Fatalf("first run: %+v", res.Error)
	}
	if fds := strings.Fields(res.Value["stdout"].(string)); strings.Contains(" "+strings.Join(fds, " ")+" ", " 9 ") {
		t.Errorf("the work inherited the lock's fd 9: fds %v", fds)
	}
	if res := r.Command(context.Background(), tg, "true", Options{Guard: opts.Guard}); !res.OK() {
		t.Errorf("after the first run ended the lock is free, but: %+v", res.Error)
	}
}

// The guard's lock directory must be the user's own: a link or another
// user's directory in its place makes the run fail, not follow it.
func TestGuardRefusesForeignLockDir(t *testing.T) {
	r, tg := guardRunner(t)
	base := tg.Config["ssh"].(map[string]any)["tmpdir"].(string)
	out := r.Command(context.Background(), tg, "id -u; id -un", Options{})
	if !out.OK() {
		t.Fatal(out.Error)
	}
	ids := strings.Fields(out.Value["stdout"].(string))
	victim := t.TempDir()
	// The directory is named by the user's name when muster knows it, by
	// the uid otherwise: plant a link at both.
	must(t, os.Symlink(victim, filepath.Join(base, "muster-guard."+ids[0])))
	must(t, os.Symlink(victim, filepath.Join(base, "muster-guard."+targetDirName(ids[1]))))
	res := r.Command(context.Background(), tg, "true", Options{Guard: "g"})
	if res.OK() || res.Error.IssueCode != IssueGuardUnavailable {
		t.Fatalf("guard through a link: %+v, want %s", res.Error, IssueGuardUnavailable)
	}
	if entries, _ := os.ReadDir(victim); len(entries) != 0 {
		t.Errorf("the link's target got %v", entries)
	}
}

func TestGuardWaited(t *testing.T) {
	for wait, want := range map[time.Duration]time.Duration{
		0: DefaultGuardWait, -1: 0, -time.Hour: 0, time.Nanosecond: time.Second, time.Second: time.Second,
		1500 * time.Millisecond: 2 * time.Second, time.Minute: time.Minute,
	} {
		if got := (&guardSpec{wait: wait}).waited(); got != want {
			t.Errorf("GuardWait %v waits %v, want %v", wait, got, want)
		}
	}
}

func TestGuardFilter(t *testing.T) {
	const m = "muster-guard-x:"
	tests := []struct {
		name   string
		writes []string
		out    string
		msg    string
	}{
		{"plain", []string{"a\nb"}, "a\nb", ""},
		{"marker line", []string{"x\n" + m + " busy 1 /f\ny\n"}, "x\ny\n", "busy 1 /f"},
		{"marker split", []string{"mus", "ter-guard-", "x: noflock", "\nrest"}, "rest", "noflock"},
		{"prefix only", []string{"muster\n"}, "muster\n", ""},
		{"marker mid-line is output", []string{"a " + m + " busy\n"}, "a " + m + " busy\n", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out strings.Builder
			f := &guardFilter{w: &out, marker: []byte(m)}
			for _, w := range tc.writes {
				if n, err := f.Write([]byte(w)); n != len(w) || err != nil {
					t.Fatalf("Write = %d, %v", n, err)
				}
			}
			msg, found := f.end()
			if out.String() != tc.out || msg != tc.msg || found != (tc.msg != "") {
				t.Errorf("got %q, %q, %v; want %q, %q", out.String(), msg, found, tc.out, tc.msg)
			}
		})
	}
}

// withCmdline counts the live processes whose command line contains s.
func withCmdline(s string) int {
	n := 0
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		b, err := os.ReadFile(d + "/cmdline")
		pid, _ := strconv.Atoi(filepath.Base(d))
		if err == nil && strings.Contains(string(b), s) && alive(pid) {
			n++
		}
	}
	return n
}

// A client that dies while its run waits for the guard's lock never gets
// its work started: the program gives up waiting instead.
func TestGuardWaitEndsWithItsClient(t *testing.T) {
	r, _, tg, s := sshRunner(t)
	dir := sharedDir(t)
	tg.Config["ssh"].(map[string]any)["tmpdir"] = dir
	started, release, ran := filepath.Join(dir, "started"), filepath.Join(dir, "release"), filepath.Join(dir, "ran")
	guard := "abandoned-" + randomToken()
	lockName := (&guardSpec{name: guard}).lockName()
	first := make(chan *muster.Result, 1)
	go func() {
		first <- r.Command(context.Background(), tg, fmt.Sprintf(": >%s; while [ ! -e %s ]; do sleep 0.05; done", quote(started), quote(release)),
			Options{Guard: guard, GuardWait: patience})
	}()
	waitFor(t, "the first run to start", func() bool { _, err := os.Stat(started); return err == nil })
	// The first run's program (and its watcher, a subshell of it) name the
	// lock on their command lines; the second's will add to them.
	var held int
	waitFor(t, "the first run's program to hold the lock", func() bool { held = withCmdline(lockName); return held >= 1 })

	spec := orphanSpec{Transport: "ssh", Action: "command", Line: "trap '' TERM; : >" + quote(ran), Guard: guard, TmpDir: dir,
		Port: s.Port, User: s.User, Key: s.ClientKeyFile, KnownHosts: s.KnownHostsFile}
	raw, err := json.Marshal(spec)
	must(t, err)
	cmd := exec.Command(os.Args[0], "-test.run=^TestOrphanHelper$", "-test.count=1")
	cmd.Env = append(os.Environ(), "MUSTER_ACTION_ORPHAN_HELPER="+string(raw))
	must(t, cmd.Start())
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() { _ = cmd.Process.Kill(); <-exited })
	waitFor(t, "the second run to wait for the lock", func() bool { return withCmdline(lockName) > held })
	must(t, cmd.Process.Kill())
	<-exited

	must(t, os.WriteFile(release, nil, 0o644))
	if res := <-first; !res.OK() {
		t.Fatalf("first run: %+v", res.Error)
	}
	waitFor(t, "the second run's program to end", func() bool { return withCmdline(lockName) == 0 })
	if _, err := os.Stat(ran); err == nil {
		t.Errorf("the run whose client died while it waited for the lock ran its work")
	}
}
