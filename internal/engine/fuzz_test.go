package engine

import (
	"path/filepath"
	"strings"
	"testing"
)

// FuzzFindFile checks that reading a script or file reference never
// panics, that every place it tries is absolute, and that a miss names
// the reference and every place tried.
func FuzzFindFile(f *testing.F) {
	for _, s := range []string{"m/scripts/s.sh", "m/files/a/b.conf", "m/x.sh", "./local.sh", "/abs/x.sh", "m/", "/", "", "m//x", "../m/x", "m/scripts/"} {
		f.Add(s)
	}
	proj := f.TempDir()
	modules := map[string]string{"m": filepath.Join(proj, "modules", "m")}
	f.Fuzz(func(t *testing.T, ref string) {
		tried, _ := Candidates(ref, modules, proj)
		for _, c := range tried {
			if !filepath.IsAbs(c) {
				t.Fatalf("Candidates(%q) tries a relative path %q", ref, c)
			}
		}
		p, err := FindFile(ref, ScriptRef, modules, proj)
		if err == nil {
			if !filepath.IsAbs(p) {
				t.Fatalf("FindFile(%q) = relative %q", ref, p)
			}
			return
		}
		for _, c := range tried {
			if !strings.Contains(err.Error(), c) {
				t.Fatalf("FindFile(%q): error %q does not name %q", ref, err, c)
			}
		}
	})
}
