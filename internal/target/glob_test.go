package target

import (
	"strings"
	"testing"
)

func TestMatch(t *testing.T) {
	tests := []struct {
		pattern, name string
		want          bool
	}{
		{"web*", "web1.example.com", true},
		{"WEB*", "web1.example.com", true},
		{"web*", "Web1", true},
		{"*.example.com", "web1.example.com", true},
		{"*.example.com", "example.com", false},
		{"web?", "web1", true},
		{"web?", "web12", false},
		{"web[12]", "web2", true},
		{"web[12]", "web3", false},
		{"web[^12]", "web3", true},
		{"web[!12]", "web1", false},
		{"web[1-3]", "web3", true},
		{"web[A-C]", "webb", true},
		{"web[]]", "web]", true},
		{"{web,db}1", "db1", true},
		{"{web,db}1", "app1", false},
		{"{web{1,2},db}", "web2", true},
		{"{web{1,2},db}", "web3", false},
		{"x{,y}", "x", true},
		{"{a,b}{c,d}", "bd", true},
		{`web\*`, "web*", true},
		{`web\*`, "web1", false},
		{`\{a,b\}`, "{a,b}", true},
		{"[{]a", "{a", true},
		{"*", "", true},
		{"a*b*c", "aXXbYYbc", true},
		{"a*b*c", "aXXbYYbd", false},
		{"**", "anything", true},
	}
	for _, tc := range tests {
		got, err := Match(tc.pattern, tc.name)
		if err != nil || got != tc.want {
			t.Errorf("Match(%q, %q) = %v, %v; want %v", tc.pattern, tc.name, got, err, tc.want)
		}
	}
}

func TestMatchErrors(t *testing.T) {
	tests := map[string]string{
		"web{1,2":                   `invalid glob pattern "web{1,2": unclosed "{"`,
		"web1,2}":                   `invalid glob pattern "web1,2}": unmatched "}"`,
		"web[12":                    `invalid glob pattern "web[12": unclosed "["`,
		"web12]":                    `invalid glob pattern "web12]": unmatched "]"`,
		"{a,{b}":                    `invalid glob pattern "{a,{b}": unclosed "{"`,
		"u:secret@h[":               `invalid glob pattern "u@h[": unclosed "["`,
		strings.Repeat("{a,b}", 13): `invalid glob pattern "` + strings.Repeat("{a,b}", 13) + `": too many {} alternatives`,
	}
	for pattern, want := range tests {
		_, err := Match(pattern, "x")
		if err == nil || err.Error() != want {
			t.Errorf("Match(%q) error = %v, want %s", pattern, err, want)
		}
	}
}
