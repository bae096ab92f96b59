package muster

import (
	"slices"
	"testing"
)

func TestFingerprintOf(t *testing.T) {
	res := []byte(`{"value":{"stdout":"v1\n","os":{"release":{"major":"12"}}}}`)
	for _, tc := range []struct {
		spec, want string
	}{
		{"stdout", HashFingerprint([]byte("v1\n"))},
		{"json:os.release", HashFingerprint([]byte(`{"major":"12"}`))},
		{"json:os.missing", HashFingerprint([]byte(`null`))},
	} {
		spec, err := ParseFingerprint(tc.spec)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := spec.Of(res); err != nil || got != tc.want {
			t.Errorf("%s: %q %v, want %q", tc.spec, got, err, tc.want)
		}
	}
	if got, err := ParseFileFingerprint("E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855  /x\n"); err != nil ||
		got != "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" {
		t.Errorf("ParseFileFingerprint: %q %v", got, err)
	}
	if _, err := ParseFileFingerprint("sha256sum: /x: No such file"); err == nil {
		t.Error("ParseFileFingerprint accepted an error message")
	}
}

func TestChangedFactsAndOverlap(t *testing.T) {
	old := map[string]any{"os": map[string]any{"release": "12", "family": "debian"}, "uptime": 5.0, "gone": 1.0}
	new := map[string]any{"os": map[string]any{"release": "13", "family": "debian"}, "uptime": 6.0, "added": nil}
	got := ChangedFacts(old, new)
	if want := []string{"added", "gone", "os.release", "uptime"}; !slices.Equal(got, want) {
		t.Fatalf("ChangedFacts = %v, want %v", got, want)
	}
	for _, tc := range []struct {
		used, changed []string
		want          bool
	}{
		{[]string{"os.release"}, []string{"os.release"}, true},
		{[]string{"os.release"}, []string{"os"}, true},
		{[]string{"os"}, []string{"os.release.major"}, true},
		{[]string{"os.release", "networking.ip"}, []string{"uptime", "os.family"}, false},
		{[]string{"os.rel"}, []string{"os.release"}, false},
	} {
		if got := FactsOverlap(tc.used, tc.changed); got != tc.want {
			t.Errorf("FactsOverlap(%v, %v) = %v", tc.used, tc.changed, got)
		}
	}
}
