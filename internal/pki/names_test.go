package pki

import (
	"errors"
	"regexp"
	"strings"
	"testing"
)

func TestValidCertname(t *testing.T) {
	long := strings.Repeat("a", 63)
	tests := []struct {
		name string
		ok   bool
		msg  string // part of the error
	}{
		{"web1.example.com", true, ""},
		{"web1", true, ""},
		{"a", true, ""},
		{"db-01.dc_2.example.com", true, ""},
		{"1web.example.com", true, ""},
		{long + ".example.com", true, ""},
		{strings.Repeat(long+".", 3) + strings.Repeat("a", 61), true, ""}, // 253
		{"", false, "empty"},
		{strings.Repeat(long+".", 3) + strings.Repeat("a", 62), false, "longer than 253"},
		{long + "a.example.com", false, "longer than 63"},
		{"Web1.example.com", false, `use "web1.example.com"`},
		{"*.example.com", false, "wildcards"},
		{"web?.example.com", false, "wildcards"},
		{"web1.example.com.", false, "empty label"},
		{".web1", false, "empty label"},
		{"web1..example.com", false, "empty label"},
		{"-web1.example.com", false, "starts or ends with '-'"},
		{"web1-.example.com", false, "starts or ends with '-'"},
		{"web 1.example.com", false, "' ' is not allowed"},
		{"web1.example.com/x", false, "'/' is not allowed"},
		{"web1,db1", false, "',' is not allowed"},
		{"wéb1", false, "not allowed"},
		{"10.0.0.1", false, "IP address"},
		{"::1", false, "IP address"},
		{"web1\x00", false, "not allowed"},
	}
	for _, tt := range tests {
		err := ValidCertname(tt.name)
		if (err == nil) != tt.ok {
			t.Errorf("ValidCertname(%q) = %v, want ok=%v", tt.name, err, tt.ok)
			continue
		}
		if err != nil {
			if !errors.Is(err, ErrInvalidCertname) {
				t.Errorf("ValidCertname(%q) = %v, does not wrap ErrInvalidCertname", tt.name, err)
			}
			if !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("ValidCertname(%q) = %q, want it to say %q", tt.name, err, tt.msg)
			}
		}
	}
}

func TestValidGlobs(t *testing.T) {
	tests := []struct {
		globs string
		msg   string // "" = valid
	}{
		{"", ""},
		{"  ", ""},
		{"web*.example.com", ""},
		{"web*.example.com, db1.example.com", ""},
		{"**.example.com", ""},
		{"*", ""},
		{"**", ""},
		{"web*.example.com,", "empty glob"},
		{"a,,b", "empty glob"},
		{"***.example.com", "three or more"},
		{"Web*.example.com", "upper case"},
		{"web*.example.com.", "empty label"},
		{"web?.example.com", "'?' is not allowed"},
		{"web[12].example.com", "'[' is not allowed"},
		{"-*.example.com", "starts or ends with '-'"},
		{strings.Repeat("a,", 2100), "longer than 4096"},
	}
	for _, tt := range tests {
		err := ValidGlobs(tt.globs)
		switch {
		case tt.msg == "" && err != nil:
			t.Errorf("ValidGlobs(%q) = %v, want nil", clip(tt.globs), err)
		case tt.msg != "" && (err == nil || !strings.Contains(err.Error(), tt.msg)):
			t.Errorf("ValidGlobs(%q) = %v, want an error saying %q", clip(tt.globs), err, tt.msg)
		}
	}
}

func TestMatchGlob(t *testing.T) {
	tests := []struct {
		globs, name string
		want        bool
	}{
		{"web*.example.com", "web1.example.com", true},
		{"web*.example.com", "web.example.com", true},
		{"web*.example.com", "webserver-12.example.com", true},
		{"web*.example.com", "db1.example.com", false},
		{"web*.example.com", "web1.evil.example.com", false}, // '*' stays within a label
		{"web*.example.com", "web1.example.com.evil.net", false},
		{"web*.example.com", "xweb1.example.com", false},
		{"*.example.com", "a.example.com", true},
		{"*.example.com", "example.com", false},
		{"*.example.com", "a.b.example.com", false},
		{"**.example.com", "a.b.example.com", true},
		{"**.example.com", "a.example.com", true},
		{"**.example.com", "example.com", false},
		{"**", "anything.at.all", true},
		{"*", "web1", true},
		{"*", "web1.example.com", false},
		{"*web*", "myweb01", true},
		{"*-*-*", "a-b-c", true},
		{"*-*-*", "a-b", false},
		{"db1.example.com", "db1.example.com", true},
		{"db1.example.com", "db2.example.com", false},
		{"db1.example.com, web*.example.com", "web7.example.com", true},
		{"db1.example.com,web*.example.com", "db1.example.com", true},
		{" db1.example.com , web*.example.com ", "db1.example.com", true},
		{"", "web1.example.com", false},                  // no globs: nothing autosigns
		{"web*.example.com", "WEB1.example.com", false},  // not a certname
		{"Web*.example.com", "web1.example.com", false},  // not a valid glob
		{"web*.example.com,", "web1.example.com", false}, // the whole list is invalid
		{"a*a*a*a*a*a*a*a*a*b", strings.Repeat("a", 60), false},
		{"**a**a**a**a**a**b", strings.Repeat("a", 200), false},
	}
	for _, tt := range tests {
		if got := MatchGlob(tt.globs, tt.name); got != tt.want {
			t.Errorf("MatchGlob(%q, %q) = %v, want %v", tt.globs, tt.name, got, tt.want)
		}
	}
}

// globRegexp is a reference for matchOne: the same glob as a regular
// expression.
func globRegexp(g string) *regexp.Regexp {
	var b strings.Builder
	b.WriteString("^")
	for i := 0; i < len(g); {
		switch {
		case strings.HasPrefix(g[i:], "**"):
			b.WriteString(".*")
			i += 2
		case g[i] == '*':
			b.WriteString(`[^.]*`)
			i++
		default:
			b.WriteString(regexp.QuoteMeta(g[i : i+1]))
			i++
		}
	}
	b.WriteString("$")
	return regexp.MustCompile(b.String())
}

func FuzzValidCertname(f *testing.F) {
	for _, s := range []string{"web1.example.com", "a", "A", "*.x", "a..b", "-a", "10.0.0.1", "a_b-c.d", strings.Repeat("a.", 130)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		err := ValidCertname(s)
		if err != nil {
			if !errors.Is(err, ErrInvalidCertname) {
				t.Fatalf("ValidCertname(%q) = %v, not wrapping ErrInvalidCertname", s, err)
			}
			if MatchGlob("**", s) {
				t.Fatalf("MatchGlob(**, %q) matched an invalid certname", s)
			}
			return
		}
		if len(s) == 0 || len(s) > MaxCertnameLen || strings.ToLower(s) != s || strings.ContainsAny(s, "*?/ ,") {
			t.Fatalf("ValidCertname(%q) accepted it", s)
		}
		// A certname is a glob that matches itself, and "**" matches it.
		if err := ValidGlobs(s); err != nil {
			t.Fatalf("certname %q is not a valid glob: %v", s, err)
		}
		if !MatchGlob(s, s) || !MatchGlob("**", s) {
			t.Fatalf("certname %q does not match itself or **", s)
		}
	})
}

func FuzzMatchGlob(f *testing.F) {
	f.Add("web*.example.com", "web1.example.com")
	f.Add("**.example.com", "a.b.example.com")
	f.Add("*", "web1")
	f.Add("a*,b**", "bcd.e")
	f.Add("*a*a*a*b", "aaaaaaaaaaaaaaaa")
	f.Fuzz(func(t *testing.T, globs, name string) {
		got := MatchGlob(globs, name)
		if ValidGlobs(globs) != nil || ValidCertname(name) != nil {
			if got {
				t.Fatalf("MatchGlob(%q, %q) = true for an invalid glob or name", globs, name)
			}
			return
		}
		want := false
		for g := range strings.SplitSeq(globs, ",") {
			if g = strings.TrimSpace(g); g != "" && globRegexp(g).MatchString(name) {
				want = true
			}
		}
		if got != want {
			t.Fatalf("MatchGlob(%q, %q) = %v, the regexp reference says %v", globs, name, got, want)
		}
	})
}
