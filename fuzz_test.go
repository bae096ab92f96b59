package muster

import (
	"strings"
	"testing"
)

// FuzzParseFingerprint: a spec that parses renders back to itself, and
// names only the kinds ParseFingerprint documents.
func FuzzParseFingerprint(f *testing.F) {
	for _, s := range []string{"stdout", "json:version", "json:os.release.major", "file:/etc/app.conf",
		"file:/tmp/a b'c", "stdout:x", "json:", "json:a..b", "file:rel", "file:/a\nb", "sha1", "", ":"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		spec, err := ParseFingerprint(s)
		if err != nil {
			if !strings.Contains(err.Error(), "fingerprint") {
				t.Fatalf("error %q does not say it is about the fingerprint", err)
			}
			return
		}
		if spec.String() != s {
			t.Fatalf("ParseFingerprint(%q).String() = %q", s, spec.String())
		}
		switch spec.Kind {
		case FingerprintStdout, FingerprintJSON, FingerprintFile:
		default:
			t.Fatalf("ParseFingerprint(%q): kind %q", s, spec.Kind)
		}
		if spec.Kind == FingerprintFile && !strings.HasPrefix(spec.FileFingerprintCommand(), "sha256sum -- '") {
			t.Fatalf("file command %q", spec.FileFingerprintCommand())
		}
		if spec.Kind != FingerprintFile {
			if _, err := spec.Of([]byte(`{"value":{"stdout":"x"}}`)); err != nil {
				t.Fatal(err)
			}
		}
	})
}
