package dispatch_test

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/muster-run/muster"
	"github.com/muster-run/muster/internal/server/dispatch"
)

// shellExecutor runs a command job's command with sh on this machine, as
// the node (MUSTER_NODE set), and answers Bolt's result shape.
func shellExecutor(ctx context.Context, r muster.Run) dispatch.Outcome {
	var spec muster.JobSpec
	if err := json.Unmarshal(r.Spec, &spec); err != nil {
		return dispatch.Failure(err)
	}
	cmd := exec.CommandContext(ctx, "sh", "-c", spec.Command)
	cmd.Env = append(os.Environ(), "MUSTER_NODE="+r.Node)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := cmd.ProcessState.ExitCode()
	res, _ := json.Marshal(map[string]any{"target": r.Node, "action": "command", "status": "success",
		"value": map[string]any{"stdout": stdout.String(), "stderr": stderr.String(), "exit_code": code}})
	return dispatch.Outcome{OK: err == nil, ExitCode: code, Result: res}
}

func lines(t *testing.T, path string) int {
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return 0
	} else if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(b), "\n")
}

// TestFingerprintOnChange runs a change-driven continuous job: the
// node whose output changed, and only it, gets its on-change action.
func TestFingerprintOnChange(t *testing.T) {
	for _, kind := range []string{"stdout", "file"} {
		t.Run(kind, func(t *testing.T) {
			s := openSQLite(t, "")
			dir := t.TempDir()
			for _, n := range []string{"n1", "n2"} {
				if err := os.WriteFile(filepath.Join(dir, n), []byte("v1 "+n+"\n"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			// file: fingerprints one path; each node's command copies its
			// own file there, so the file's content differs by node.
			shared := filepath.Join(dir, "shared")
			command, print := "sleep 0.02; cat "+dir+"/$MUSTER_NODE", "stdout"
			if kind == "file" {
				command, print = "sleep 0.02; mkdir -p "+shared+"; cp "+dir+"/$MUSTER_NODE "+shared+"/f", "file:"+shared+"/f"
			}
			var mu sync.Mutex
			var changes []muster.ResultChange
			start(t, dispatch.Config{Queue: s, Executor: dispatch.ExecutorFunc(func(ctx context.Context, r muster.Run, _ dispatch.Output) dispatch.Outcome {
				return shellExecutor(ctx, r)
			}), Slots: 1, Hooks: dispatch.Hooks{OnResultChange: func(_ muster.Run, c muster.ResultChange) {
				mu.Lock()
				changes = append(changes, c)
				mu.Unlock()
			}}})
			act, _ := json.Marshal(muster.JobSpec{Command: "echo acted >> " + dir + "/$MUSTER_NODE.acts"})
			spec, _ := json.Marshal(muster.JobSpec{Command: command})
			j := submit(t, s, "", []string{"n1", "n2"}, func(j *muster.Job) {
				j.Spec, j.Continuous, j.Fingerprint = spec, true, print
				j.OnChange = &muster.OnChange{Kind: muster.JobCommand, Spec: act}
			})
			prints := func() map[string]muster.Fingerprint {
				fs, err := s.ListFingerprints(context.Background(), j.Job.ID)
				if err != nil {
					t.Fatal(err)
				}
				out := map[string]muster.Fingerprint{}
				for _, f := range fs {
					out[f.Node] = f
				}
				return out
			}
			// The first result is a change: each node acts once.
			t.Cleanup(func() {
				if t.Failed() {
					rs, _ := s.ListRuns(context.Background(), muster.RunFilter{})
					for _, r := range rs[:min(len(rs), 10)] {
						t.Logf("run %d job %d %s %s %q %s", r.ID, r.JobID, r.Node, r.State, r.Error, r.Result)
					}
				}
			})
			waitFor(t, "first actions", func() bool {
				return lines(t, dir+"/n1.acts") == 1 && lines(t, dir+"/n2.acts") == 1
			})
			before := prints()
			if err := os.WriteFile(filepath.Join(dir, "n1"), []byte("v2 n1\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "n1 acts again", func() bool { return lines(t, dir+"/n1.acts") == 2 })
			// n2 keeps running, unchanged: wait for several more of its runs.
			done := func() int {
				rs, err := s.ListRuns(context.Background(), muster.RunFilter{JobID: j.Job.ID, Node: "n2",
					States: []muster.RunState{muster.RunSucceeded}})
				if err != nil {
					t.Fatal(err)
				}
				return len(rs)
			}
			n := done()
			waitFor(t, "n2 runs on", func() bool { return done() >= n+3 })
			after := prints()
			if got := lines(t, dir+"/n2.acts"); got != 1 {
				t.Fatalf("n2 acted %d times; its result never changed", got)
			}
			if after["n1"].Changes != 2 || after["n1"].Value == before["n1"].Value || after["n2"] != before["n2"] {
				t.Fatalf("fingerprints before %+v after %+v", before, after)
			}
			mu.Lock()
			defer mu.Unlock()
			if len(changes) != 3 || changes[2].Node != "n1" || changes[2].Previous != before["n1"].Value || changes[2].OnChangeJob == 0 {
				t.Fatalf("changes seen by the hook: %+v", changes)
			}
		})
	}
}

// TestFingerprintFileMissing fails a run whose file cannot be read.
func TestFingerprintFileMissing(t *testing.T) {
	s := openSQLite(t, "")
	start(t, dispatch.Config{Queue: s, Executor: dispatch.ExecutorFunc(func(ctx context.Context, r muster.Run, _ dispatch.Output) dispatch.Outcome {
		return shellExecutor(ctx, r)
	})})
	j := submit(t, s, "true", []string{"n1"}, func(j *muster.Job) {
		j.Continuous, j.Fingerprint = true, "file:"+filepath.Join(t.TempDir(), "missing")
	})
	var r muster.Run
	waitFor(t, "a failed run", func() bool {
		rs, _ := s.ListRuns(context.Background(), muster.RunFilter{JobID: j.Job.ID, States: []muster.RunState{muster.RunFailed}})
		if len(rs) > 0 {
			r = rs[0]
		}
		return len(rs) > 0
	})
	if !strings.Contains(r.Error, muster.KindFingerprint) || !strings.Contains(r.Error, "missing") {
		t.Fatalf("error %q", r.Error)
	}
	if _, err := s.CancelJob(context.Background(), j.Job.ID); err != nil {
		t.Fatal(err)
	}
}
