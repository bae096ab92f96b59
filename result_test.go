package muster

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestResultJSONRoundTrip(t *testing.T) {
	for _, in := range []*Result{
		{Target: "web1", Action: "command", Object: "uptime", Value: map[string]any{"stdout": "up\n", "exit_code": float64(0)}},
		{Target: "db1", Action: "task", Object: "pkg::install", Value: map[string]any{"exit_code": float64(2)},
			Error: &Error{Kind: KindTask, Msg: "boom", IssueCode: "X", Details: map[string]any{"exit_code": float64(2)}}},
		{Target: "x", Action: "plan"},
	} {
		b, err := json.Marshal(in)
		if err != nil {
			t.Fatal(err)
		}
		var out Result
		if err := json.Unmarshal(b, &out); err != nil {
			t.Fatalf("%s: %v", b, err)
		}
		again, _ := json.Marshal(&out)
		if string(again) != string(b) {
			t.Errorf("round trip changed the JSON:\n%s\n%s", b, again)
		}
		if out.OK() != in.OK() || out.Object != in.Object {
			t.Errorf("round trip of %s: ok %v object %q", b, out.OK(), out.Object)
		}
	}
}

func TestJobSpecValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		kind JobKind
		spec string
		want string // "" = valid, else a substring of the error
	}{
		{"command", JobCommand, `{"command":"uptime"}`, ""},
		{"empty command", JobCommand, `{"command":"  "}`, "non-empty"},
		{"command with task", JobCommand, `{"command":"x","task":"y"}`, `takes no "task"`},
		{"task", JobTask, `{"task":"mod::t","params":{"a":1}}`, ""},
		{"task without name", JobTask, `{"params":{"a":1}}`, `needs "task"`},
		{"script", JobScript, `{"script":"s.sh","script_body":"ZWNobwo=","args":["-x"]}`, ""},
		{"script without body", JobScript, `{"script":"s.sh"}`, "script_body"},
		{"plan", JobPlan, `{"plan":"ops::deploy","params":{"v":"1"}}`, ""},
		{"plan with targets", JobPlan, `{"plan":"ops::deploy","params":{"targets":"x"}}`, "targets"},
		{"client sealed", JobCommand, `{"command":"x","sealed":"v1:abc"}`, "set by the server"},
		{"bad secret key", JobCommand, `{"command":"x","secrets":{"password":"p"}}`, "unknown key"},
		{"secret twice", JobTask, `{"task":"t","params":{"pw":"a"},"secrets":{"param:pw":"b"}}`, "both"},
		{"bad env", JobCommand, `{"command":"x","env":{"A B":"1"}}`, "invalid variable"},
		{"unknown kind", JobKind("apply"), `{"command":"x"}`, "unknown job kind"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := DecodeJobSpec([]byte(tc.spec))
			if err != nil {
				t.Fatal(err)
			}
			err = s.Validate(tc.kind)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("error %v, want it to mention %q", err, tc.want)
			}
		})
	}
	if _, err := DecodeJobSpec([]byte(`{"command":"x","bogus":1}`)); err == nil || !strings.Contains(err.Error(), "bogus") {
		t.Fatalf("unknown field: %v", err)
	}
	red := JobSpec{Command: "x", ScriptBody: []byte("b"), Secrets: map[string]string{"sudo_password": "hunter2"}, Sealed: "v1:x"}.Redacted()
	b, _ := json.Marshal(red)
	if strings.Contains(string(b), "hunter2") || strings.Contains(string(b), "v1:x") || red.ScriptBody != nil {
		t.Fatalf("redacted spec shows secrets: %s", b)
	}
}

func FuzzDecodeJobSpec(f *testing.F) {
	f.Add([]byte(`{"command":"uptime","env":{"A":"1"}}`), "command")
	f.Add([]byte(`{"task":"t","params":{"x":[1,2]},"secrets":{"param:y":"z"}}`), "task")
	f.Add([]byte(`{"script":"a","script_body":"AA=="}`), "script")
	f.Fuzz(func(t *testing.T, data []byte, kind string) {
		s, err := DecodeJobSpec(data)
		if err != nil {
			return
		}
		_ = s.Validate(JobKind(kind)) // must not panic
		_ = s.Redacted()
	})
}
