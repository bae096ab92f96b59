package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

var decodeSeeds = []string{
	`{"kind":"command","targets":"web*,db1","spec":{"command":"uptime"}}`,
	`{"kind":"task","targets":["web1","db1"],"spec":{"task":"mod::t","params":{"a":[1,{"b":null}]},"secrets":{"sudo_password":"x"}},"priority":-3,"run_at":"2030-01-02T03:04:05.123+02:00","every":"1h","retries":2,"timeout":"90s","on_lease_expiry":"fail"}`,
	`{"kind":"script","targets":"web1","spec":{"script":"x.sh","script_body":"ZWNobyBoaQ==","args":["-v"],"env":{"A":"b"},"run_as":"root"},"continuous":true}`,
	`{"kind":"plan","targets":"all","spec":{"plan":"p","params":{"x":1e300}}}`,
	`{}`, `null`, `[]`, `"x"`, ``, `{"kind":1}`, `{"targets":{}}`, `{"targets":[1]}`, `{"spec":[]}`,
	`{"spec":{"command":5}}`, `{"spec":{"env":{"A":1}}}`, `{"spec":{"script_body":"!!"}}`, `{"spec":{"x":1}}`,
	`{"every":5}`, `{"every":"5 minutes"}`, `{"run_at":"now"}`, `{"priority":1.5}`, `{"priority":1e40}`,
	`{"retries":"2"}`, `{"continuous":"yes"}`, `{"kind":"command"} x`, `{"kind":"command"`, `{"a":1,"a":2}`,
	`{"kind":"command","kind":"task"}`, "{\"kind\":\"\xff\"}", `{"spec":null,"targets":null,"kind":null}`,
	`{"kind":"command","targets":"web1","spec":{"command":"migrate"},"after":[1,2],"after_each":true}`,
	`{"kind":"task","targets":["db1"],"spec":{"task":"t"},"after":[7],"after_each":false,"retries":1}`,
	`{"after":[]}`, `{"after":null}`, `{"after":[0]}`, `{"after":[-1]}`, `{"after":[1,1]}`, `{"after":[1.5]}`,
	`{"kind":"command","targets":"web*","spec":{"command":"cat /etc/app.conf"},"continuous":true,"fingerprint":"stdout","on_change":{"kind":"command","spec":{"command":"systemctl reload app"}},"facts_used":["os.release","networking.ip"],"depends_on_result":3}`,
	`{"kind":"task","targets":"db1","spec":{"task":"facts"},"continuous":true,"fingerprint":"json:os.release","on_change":{"kind":"task","spec":{"task":"mod::t","params":{"x":1}}}}`,
	`{"kind":"command","targets":"n1","spec":{"command":"true"},"continuous":true,"fingerprint":"file:/etc/hosts","on_change":{"kind":"agent-run"}}`,
	`{"fingerprint":"file:rel"}`, `{"on_change":{"kind":"x","extra":1}}`, `{"on_change":[]}`, `{"facts_used":"os"}`, `{"facts_used":["a..b"]}`, `{"depends_on_result":-1}`,
	`{"after":["1"]}`, `{"after":5}`, `{"after":{}}`, `{"after":[9223372036854775808]}`, `{"after_each":1}`,
	`{"after_each":true}`, `{"kind":"command","targets":"w","spec":{"command":"x"},"after":[1],"pull":true}`,
}

func FuzzDecodeSubmit(f *testing.F) {
	for _, s := range decodeSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		req, err := DecodeSubmit(bytes.NewReader(data))
		if err != nil {
			checkFieldError(t, err)
			return
		}
		if err := req.Validate(); err != nil {
			checkFieldError(t, err)
		}
		// What decodes re-encodes to something that decodes the same.
		b1, err := json.Marshal(req)
		if err != nil {
			t.Fatalf("re-encoding %q: %v", data, err)
		}
		again, err := DecodeSubmit(bytes.NewReader(b1))
		if err != nil {
			t.Fatalf("re-decoding %s: %v", b1, err)
		}
		if b2, _ := json.Marshal(again); !bytes.Equal(b1, b2) {
			t.Fatalf("round trip changed the request:\n%s\n%s", b1, b2)
		}
	})
}

func checkFieldError(t *testing.T, err error) {
	t.Helper()
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Field == "" || !strings.HasPrefix(err.Error(), fe.Field+": ") || fe.Msg == "" {
		t.Fatalf("error does not name a field: %#v (%v)", err, err)
	}
}

func TestDecodeSubmitErrors(t *testing.T) {
	tests := []struct{ in, field string }{
		{`{"kind":"command","colour":"red"}`, "colour"},
		{`{"spec":{"command":5}}`, "spec.command"},
		{`{"spec":{"env":{"A":1}}}`, "spec.env"},
		{`{"spec":{"script_body":"!!"}}`, "spec.script_body"},
		{`{"spec":{"shell":"zsh"}}`, "spec.shell"},
		{`{"every":5}`, "every"},
		{`{"timeout":"soon"}`, "timeout"},
		{`{"run_at":"now"}`, "run_at"},
		{`{"priority":1.5}`, "priority"},
		{`{"retries":"2"}`, "retries"},
		{`{"continuous":1}`, "continuous"},
		{`{"on_lease_expiry":false}`, "on_lease_expiry"},
		{`{"targets":[1]}`, "targets[0]"},
		{`{"targets":5}`, "targets"},
		{`[1]`, "body"},
		{`nope`, "body"},
		{``, "body"},
		{`{"kind":"command"} {}`, "body"},
		{`{"kind":"command"`, "body"},
	}
	for _, tc := range tests {
		_, err := DecodeSubmit(strings.NewReader(tc.in))
		var fe *FieldError
		if !errors.As(err, &fe) || !strings.HasPrefix(fe.Field, tc.field) {
			t.Errorf("%s: %v, want a %s error", tc.in, err, tc.field)
		}
	}
	req, err := DecodeSubmit(strings.NewReader(decodeSeeds[1]))
	if err != nil {
		t.Fatal(err)
	}
	if req.Kind != "task" || strings.Join(req.Targets.Nodes, ",") != "web1,db1" || req.Priority != -3 ||
		req.Every != Duration(3600e9) || req.Timeout != Duration(90e9) || req.Retries != 2 || req.OnLeaseExpiry != "fail" ||
		req.RunAt.UTC().Format("15:04:05.000") != "01:04:05.123" || req.Spec.Secrets["sudo_password"] != "x" {
		t.Fatalf("decoded %+v", req)
	}
	if err := req.Validate(); err != nil {
		t.Fatal(err)
	}
}
