package output

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/muster-run/muster"
)

func results() []*muster.Result {
	return []*muster.Result{
		{Target: "web1", Action: "command", Object: "uptime", Value: map[string]any{"stdout": "up 3 days\n", "stderr": "", "merged_output": "up 3 days\n", "exit_code": 0}},
		{Target: "web2", Action: "command", Object: "uptime", Value: map[string]any{"stdout": "", "stderr": "boom\n", "merged_output": "boom\n", "exit_code": 2},
			Error: muster.Errorf(muster.KindCommand, "The command failed with exit code 2").WithDetail("exit_code", 2)},
		{Target: "web3", Action: "command", Object: "uptime",
			Error: &muster.Error{Kind: muster.KindNotRun, Msg: "not run on web3: the failure limit was reached", Details: map[string]any{"started": false}}},
	}
}

func TestHuman(t *testing.T) {
	var b bytes.Buffer
	h := NewHuman(&b, HumanOptions{})
	rs := results()
	for _, r := range rs {
		h.Result(r)
	}
	if err := h.Finish(rs, 1500*time.Millisecond, false); err != nil {
		t.Fatal(err)
	}
	want := `Finished on web1:
  STDOUT:
    up 3 days
Failed on web2:
  The command failed with exit code 2
  STDERR:
    boom
Not run on web3: the failure limit was reached
Successful on 1 target: web1
Failed on 1 target: web2
Not run on 1 target: web3
Ran on 3 targets in 1.50 sec
`
	if b.String() != want {
		t.Errorf("human output:\n%s\nwant:\n%s", b.String(), want)
	}
	if strings.Contains(b.String(), "\x1b[") {
		t.Error("colour without a terminal")
	}
}

func TestJSONDocument(t *testing.T) {
	var b bytes.Buffer
	j := NewJSON(&b)
	rs := results()
	for _, r := range rs {
		j.Result(r)
	}
	j.Finish(rs, 2*time.Second, false)
	var doc struct {
		Items       []map[string]any `json:"items"`
		TargetCount int              `json:"target_count"`
		Elapsed     int              `json:"elapsed_time"`
	}
	if err := json.Unmarshal(b.Bytes(), &doc); err != nil {
		t.Fatalf("%v\n%s", err, b.String())
	}
	if len(doc.Items) != 3 || doc.TargetCount != 3 || doc.Elapsed != 2 {
		t.Fatalf("doc = %+v", doc)
	}
	it := doc.Items[1]
	v := it["value"].(map[string]any)
	e := v["_error"].(map[string]any)
	if it["status"] != "failure" || e["kind"] != muster.KindCommand || v["exit_code"] != float64(2) {
		t.Errorf("item = %v", it)
	}
	if doc.Items[0]["status"] != "success" {
		t.Errorf("item 0 = %v", doc.Items[0])
	}
}

func TestStreamPrefixesEveryLine(t *testing.T) {
	var b bytes.Buffer
	s := NewStream(&b, nil)
	out, errw := s.Writers(&muster.Target{Name: "db1"})
	out.Write([]byte("one\ntw"))
	errw.Write([]byte("warn\n"))
	out.Write([]byte("o\nthree"))
	out.(interface{ Flush() }).Flush()
	want := "[db1] out: one\n[db1] err: warn\n[db1] out: two\n[db1] out: three\n"
	if b.String() != want {
		t.Errorf("stream:\n%q\nwant\n%q", b.String(), want)
	}
}

func TestHumanResultShapes(t *testing.T) {
	uploadFailed := &muster.Result{Target: "web1", Action: "upload", Object: "./a.conf",
		Value: map[string]any{"stdout": "", "stderr": "mv: cannot move\n", "merged_output": "mv: cannot move\n", "exit_code": 1},
		Error: muster.Errorf(muster.KindFile, "could not write /etc/a.conf on web1: mv: cannot move")}
	tests := []struct {
		name     string
		streamed bool
		r        *muster.Result
		want     string
	}{
		{"failed upload shows its error, not its raw value", false, uploadFailed,
			"Failed on web1:\n  could not write /etc/a.conf on web1: mv: cannot move\n"},
		{"streamed success has nothing under it", true, results()[0], "Finished on web1\n"},
		{"streamed failure keeps its error", true, results()[1], "Failed on web2:\n  The command failed with exit code 2\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			NewHuman(&b, HumanOptions{Streamed: tc.streamed}).Result(tc.r)
			if b.String() != tc.want {
				t.Errorf("Result() printed\n%q\nwant\n%q", b.String(), tc.want)
			}
		})
	}
}
