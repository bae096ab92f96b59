package target

import (
	"strings"
	"testing"
	"unicode"

	"github.com/muster-run/muster/internal/inventory"
)

var fuzzSeeds = []string{
	"", "a,b c", "web{1,2},db", "{a,{b,c}} d", "web[, ]x y", "[]],x]", `a\,b,c\ d`,
	"ssh://u:p@[::1]:22,local://", "x}y,z", "web*", "db-primary", "FRONTEND?", "{db{1,2},stage*}",
	"web[^12]", "all", "localhost", "host:2222", "[::1]:22", "web{1", "a[", "\\", "{}", "[!]",
	"@/etc/hostname", "db1,@testdata/targets.txt", "@", "webb", "@u:p@h",
}

// FuzzSplit checks that Split never panics and returns only non-empty
// tokens that hold no separator outside braces and brackets.
func FuzzSplit(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, spec string) {
		toks, err := Split(spec)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error")
			}
			return
		}
		for _, tok := range toks {
			if tok == "" {
				t.Fatalf("empty token from %q", spec)
			}
			if !strings.ContainsAny(tok, `{}[]\`) && strings.IndexFunc(tok, func(r rune) bool { return r == ',' || unicode.IsSpace(r) }) >= 0 {
				t.Fatalf("separator in token %q from %q", tok, spec)
			}
		}
	})
}

// FuzzMatch checks that Match never panics and that a pattern without
// special characters matches itself.
func FuzzMatch(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s, "web1")
	}
	f.Fuzz(func(t *testing.T, pattern, name string) {
		ok, err := Match(pattern, name)
		if err != nil && err.Error() == "" {
			t.Fatal("empty error")
		}
		_ = ok
		if !strings.ContainsAny(pattern, `*?[]{}\`) {
			if ok, err := Match(pattern, pattern); err != nil || !ok {
				t.Fatalf("literal %q does not match itself: %v", pattern, err)
			}
		}
	})
}

// FuzzResolve checks that Resolve never panics, that errors are non-empty,
// that an @file token is always refused (Resolve never reads files), and
// that results are non-empty and unique by name.
func FuzzResolve(f *testing.F) {
	inv, err := inventory.Load("testdata/inventory.yaml", inventory.Options{})
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range fuzzSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, spec string) {
		toks, _ := Split(spec)
		atFile := false
		for _, tok := range toks {
			atFile = atFile || strings.HasPrefix(tok, "@")
		}
		ts, err := Resolve(inv, []string{spec})
		if atFile && err == nil {
			t.Fatalf("@file token accepted in %q", spec)
		}
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error")
			}
			return
		}
		if len(ts) == 0 {
			t.Fatalf("no targets and no error for %q", spec)
		}
		seen := map[string]bool{}
		for _, tg := range ts {
			if tg.Name == "" || seen[tg.Name] {
				t.Fatalf("bad or duplicate target %q for %q", tg.Name, spec)
			}
			seen[tg.Name] = true
		}
	})
}
