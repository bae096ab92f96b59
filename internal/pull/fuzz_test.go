package pull

import (
	"strings"
	"testing"
)

// FuzzParse checks that Parse never panics, that its errors name the file,
// and that what it accepts is valid.
func FuzzParse(f *testing.F) {
	f.Add([]byte(fullConfig))
	for _, s := range []string{
		"", "backends: [{name: p, max_running: 2}]\n", "interval: 1h\nfloor: 2h\n", "a: b: c\n", "- x\n",
		"backends: &b [{name: p, max_running: 2}]\nruns: *b\n", "interval: !!binary aGVsbG8=\n",
		"backends: [{name: p, max_running: 99999999999999}]\n", "retry_after: {min: 1e300, max: 1}\n",
		"runs: [{command: x, success_codes: [0x10]}]\nbackends: [{name: p, max_running: 1}]\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse("fuzz.yaml", data)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "fuzz.yaml") {
				t.Fatalf("error %q does not name the file", err)
			}
			return
		}
		if c.Floor <= 0 || c.Floor > c.Interval || c.Interval > c.Ceiling || c.MaxCheckIn <= 0 ||
			c.RetryMin <= 0 || c.RetryMin > c.RetryMax || c.Utilisation <= 0 || c.Utilisation > 1 {
			t.Fatalf("invalid durations accepted: %+v", c)
		}
		seen := map[string]bool{}
		for _, b := range c.Backends {
			if b.Name == "" || seen[b.Name] || b.MaxRunning < 1 || b.Rate < 0 {
				t.Fatalf("bad backend %+v", b)
			}
			seen[b.Name] = true
		}
		if len(c.Backends) == 0 || len(c.Runs) == 0 {
			t.Fatal("no backends or runs")
		}
		for _, r := range c.Runs {
			if (r.Command == "") == (r.Task == "") || len(r.SuccessCodes) == 0 || r.Timeout <= 0 {
				t.Fatalf("bad run %+v", r)
			}
			for _, code := range r.SuccessCodes {
				if code < 0 || code > 255 {
					t.Fatalf("bad success code %d", code)
				}
			}
		}
		// A scheduler must take any valid configuration.
		s := New(c, Options{})
		_ = s.Decide(CheckIn{Node: "n", Now: testEpoch})
	})
}
