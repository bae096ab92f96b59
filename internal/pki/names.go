package pki

import (
	"errors"
	"fmt"
	"net"
	"strings"
)

// MaxCertnameLen is the longest certname accepted: the longest DNS name.
const MaxCertnameLen = 253

// maxLabelLen is the longest dot-separated part of a certname.
const maxLabelLen = 63

// maxGlobsLen bounds a comma-separated list of autosign globs.
const maxGlobsLen = 4096

// ErrInvalidCertname marks every error of [ValidCertname].
var ErrInvalidCertname = errors.New("invalid certname")

// ValidCertname checks that s can be a node's identity: a lowercase,
// DNS-like name of at most 253 characters, made of dot-separated labels of
// 1 to 63 letters a-z, digits, '-' and '_', no label starting or ending
// with '-'. Wildcards, upper case, a trailing dot and IP addresses are
// refused. The error wraps [ErrInvalidCertname] and names s.
func ValidCertname(s string) error {
	bad := func(why string) error {
		return fmt.Errorf("%w %q: %s", ErrInvalidCertname, clip(s), why)
	}
	switch {
	case s == "":
		return fmt.Errorf("%w: the certname is empty", ErrInvalidCertname)
	case len(s) > MaxCertnameLen:
		return bad(fmt.Sprintf("longer than %d characters", MaxCertnameLen))
	case strings.ContainsAny(s, "*?"):
		return bad("wildcards are not allowed in a certname")
	case strings.ToLower(s) != s:
		return bad(fmt.Sprintf("certnames are lower case: use %q", strings.ToLower(s)))
	case net.ParseIP(s) != nil:
		return bad("an IP address is not a certname: use the node's host name")
	}
	for label := range strings.SplitSeq(s, ".") {
		if err := validLabel(label, false); err != "" {
			return bad(err)
		}
	}
	return nil
}

// validLabel checks one dot-separated part of a certname or, with glob
// set, of an autosign glob (where '*' may stand anywhere). It returns why
// the label is bad, or "".
func validLabel(label string, glob bool) string {
	switch {
	case label == "":
		return "empty label (a leading, trailing or double dot)"
	case len(label) > maxLabelLen:
		return fmt.Sprintf("label %q is longer than %d characters", clip(label), maxLabelLen)
	case label[0] == '-' || label[len(label)-1] == '-':
		return fmt.Sprintf("label %q starts or ends with '-'", label)
	}
	for i := 0; i < len(label); i++ {
		c := label[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '-', c == '_':
		case glob && c == '*':
		case c >= 'A' && c <= 'Z':
			return fmt.Sprintf("upper case %q (certnames are lower case)", c)
		default:
			return fmt.Sprintf("character %q is not allowed (only a-z, 0-9, '-', '_' and '.')", c)
		}
	}
	return ""
}

// ValidGlobs checks a comma-separated list of autosign globs, such as
// "web*.example.com, db1.example.com". In a glob, '*' matches any run of
// characters within one label (it never matches a dot) and "**" matches
// any run of characters, dots included: "*.example.com" matches
// "web1.example.com" but not "a.b.example.com", which "**.example.com"
// matches. Everything else is matched literally and must be what a
// certname may contain. Spaces around each glob are ignored; an empty list
// is valid and matches nothing.
func ValidGlobs(patterns string) error {
	if len(patterns) > maxGlobsLen {
		return fmt.Errorf("autosign globs: the list is longer than %d characters", maxGlobsLen)
	}
	if strings.TrimSpace(patterns) == "" {
		return nil
	}
	for g := range strings.SplitSeq(patterns, ",") {
		g = strings.TrimSpace(g)
		if err := validGlob(g); err != "" {
			return fmt.Errorf("autosign glob %q: %s", clip(g), err)
		}
	}
	return nil
}

// validGlob checks one glob; it returns why it is bad, or "".
func validGlob(g string) string {
	switch {
	case g == "":
		return "empty glob (two commas in a row, or a trailing comma)"
	case len(g) > MaxCertnameLen:
		return fmt.Sprintf("longer than %d characters", MaxCertnameLen)
	case strings.Contains(g, "***"):
		return "three or more '*' in a row: use '*' (within a label) or '**' (across dots)"
	}
	for label := range strings.SplitSeq(g, ".") {
		if err := validLabel(label, true); err != "" {
			return err
		}
	}
	return ""
}

// MatchGlob reports whether certname matches one of the comma-separated
// autosign globs in patterns (see [ValidGlobs] for their syntax). It is
// false for an invalid certname, an invalid list, or an empty list, so a
// policy with no globs never signs anything by itself.
func MatchGlob(patterns, certname string) bool {
	if ValidCertname(certname) != nil || ValidGlobs(patterns) != nil {
		return false
	}
	for g := range strings.SplitSeq(patterns, ",") {
		if g = strings.TrimSpace(g); g != "" && matchOne(g, certname) {
			return true
		}
	}
	return false
}

// matchOne matches one valid glob against a valid certname, by dynamic
// programming over (glob position, name position): O(len(g) x len(name))
// time whatever the input, with no backtracking blow-up.
func matchOne(g, name string) bool {
	// cur[j]: the glob read so far matches name[:j].
	cur := make([]bool, len(name)+1)
	next := make([]bool, len(name)+1)
	cur[0] = true
	for i := 0; i < len(g); {
		clear(next)
		switch {
		case strings.HasPrefix(g[i:], "**"):
			// Any run of characters: every position at or after the first
			// reachable one.
			on := false
			for j := range cur {
				on = on || cur[j]
				next[j] = on
			}
			i += 2
		case g[i] == '*':
			// Any run of characters other than '.'.
			on := false
			for j := range cur {
				on = cur[j] || (on && j > 0 && name[j-1] != '.')
				next[j] = on
			}
			i++
		default:
			for j := 0; j < len(name); j++ {
				next[j+1] = cur[j] && name[j] == g[i]
			}
			i++
		}
		cur, next = next, cur
	}
	return cur[len(name)]
}

// clip shortens s for an error message.
func clip(s string) string {
	const max = 80
	if len(s) <= max {
		return s
	}
	return s[:max] + "..."
}
