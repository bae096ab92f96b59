package checkin

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestDecode(t *testing.T) {
	tests := []struct {
		name, body, err string
	}{
		{"ok", `{"version":1,"wait":1000000000}`, ""},
		{"old version", `{"version":0}`, "protocol version 0"},
		{"unknown field", `{"version":1,"certname":"other"}`, "unknown field"},
		{"trailing", `{"version":1} {}`, "data after"},
		{"not json", `hello`, "invalid JSON"},
		{"too big", `{"version":1,"changed":["` + strings.Repeat("a", MaxBody) + `"]}`, "larger than"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var r CheckInRequest
			err := Decode(strings.NewReader(tc.body), &r)
			if tc.err == "" && err != nil || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
				t.Errorf("Decode(%.40q) = %v, want error containing %q", tc.body, err, tc.err)
			}
		})
	}
}

// FuzzCheckIn: a check-in payload never panics the decoder or validator,
// and one that passes both has bounded values.
func FuzzCheckIn(f *testing.F) {
	f.Add(`{"version":1}`)
	f.Add(`{"version":1,"wait":30000000000,"changed":["/etc/sudoers"],"last_run":"2026-12-07T10:00:00Z"}`)
	f.Add(`{"version":1,"wait":-1}`)
	f.Fuzz(func(t *testing.T, body string) {
		var r CheckInRequest
		if Decode(strings.NewReader(body), &r) != nil || r.Validate() != nil {
			return
		}
		if r.Wait < 0 || len(r.Changed) > 1000 {
			t.Fatalf("accepted %+v", r)
		}
	})
}

// FuzzReport: the same for run reports.
func FuzzReport(f *testing.F) {
	f.Add(`{"version":1,"run_id":7,"attempt":1,"exit_code":0,"stdout":"ok\n","stderr":"","duration":1500000000,"started":"2026-12-07T10:00:00Z"}`)
	f.Add(`{"version":1,"run_id":7,"attempt":1,"exit_code":256}`)
	f.Fuzz(func(t *testing.T, body string) {
		var r Report
		if Decode(strings.NewReader(body), &r) != nil || r.Validate() != nil {
			return
		}
		if r.RunID <= 0 || r.Attempt <= 0 || r.ExitCode > 255 || len(r.Stdout) > MaxOutput {
			t.Fatalf("accepted %+v", r)
		}
	})
}

// FuzzFacts: the same for facts uploads: an accepted one is an object of
// bounded size.
func FuzzFacts(f *testing.F) {
	f.Add(`{"version":1,"facts":{"os":{"family":"Debian","release":{"major":"12"}},"networking":{"fqdn":"web1.example.com"}}}`)
	f.Add(`{"version":1,"facts":null}`)
	f.Add(`{"version":1,"facts":{"":1}}`)
	f.Fuzz(func(t *testing.T, body string) {
		var u FactsUpload
		if Decode(strings.NewReader(body), &u) != nil || u.Validate() != nil {
			return
		}
		b, err := json.Marshal(u.Facts)
		if u.Facts == nil || err != nil || len(b) > MaxFacts {
			t.Fatalf("accepted %.200q", body)
		}
	})
}
