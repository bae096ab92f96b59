package target

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/muster-run/muster"
	"github.com/muster-run/muster/internal/inventory"
)

func TestSplit(t *testing.T) {
	tests := []struct {
		spec string
		want []string
	}{
		{"", nil},
		{" ,\t\n", nil},
		{"a,b c", []string{"a", "b", "c"}},
		{"a, b,,  c\n\td", []string{"a", "b", "c", "d"}},
		{"web{1,2},db", []string{"web{1,2}", "db"}},
		{"{a,{b, c}} d", []string{"{a,{b, c}}", "d"}},
		{"web[, ]x y", []string{"web[, ]x", "y"}},
		{"[]],x]", []string{"[]]", "x]"}},
		{`a\,b,c\ d`, []string{`a\,b`, `c\ d`}},
		{"ssh://u@[::1]:22,local://", []string{"ssh://u@[::1]:22", "local://"}},
		{"x}y,z", []string{"x}y", "z"}},
		{"a\u00a0b", []string{"a", "b"}},
	}
	for _, tc := range tests {
		got, err := Split(tc.spec)
		if err != nil {
			t.Errorf("Split(%q): %v", tc.spec, err)
			continue
		}
		if d := cmp.Diff(tc.want, got); d != "" {
			t.Errorf("Split(%q) (-want +got):\n%s", tc.spec, d)
		}
	}
	for spec, want := range map[string]string{
		"web{1,2":            `invalid target spec "web{1,2": unclosed "{"`,
		"a,web[12":           `invalid target spec "a,web[12": unclosed "["`,
		"ssh://u:hunter2@h[": `invalid target spec "ssh://u@h[": unclosed "["`,
	} {
		_, err := Split(spec)
		if err == nil || err.Error() != want {
			t.Errorf("Split(%q) error = %v, want %s", spec, err, want)
		}
	}
}

func loadInv(t *testing.T) *inventory.Inventory {
	t.Helper()
	inv, err := inventory.Load("testdata/inventory.yaml", inventory.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return inv
}

func names(ts []*muster.Target) []string {
	var out []string
	for _, t := range ts {
		out = append(out, t.Name)
	}
	return out
}

func TestResolve(t *testing.T) {
	inv := loadInv(t)
	allNames := []string{"web1.example.com", "web2.example.com", "web3", "db1", "DB2", "stage1", "localhost"}
	tests := []struct {
		name  string
		specs []string
		want  []string
	}{
		{"group expands recursively", []string{"web"}, []string{"web1.example.com", "web2.example.com", "web3"}},
		{"subgroup", []string{"web_eu"}, []string{"web1.example.com", "web2.example.com"}},
		{"all", []string{"all"}, allNames},
		{"target name", []string{"db1"}, []string{"db1"}},
		{"alias", []string{"db-primary"}, []string{"db1"}},
		{"alias exact case", []string{"Frontend1"}, []string{"web1.example.com"}},
		{"exact lookup is case-sensitive, so ad-hoc", []string{"frontend1"}, []string{"frontend1"}},
		{"glob over groups and targets", []string{"web*"}, []string{"web1.example.com", "web2.example.com", "web3"}},
		{"glob over groups, targets, aliases", []string{"db*"}, []string{"db1", "DB2"}},
		{"glob is case-insensitive", []string{"stag*"}, []string{"web2.example.com", "stage1"}},
		{"glob on alias", []string{"FRONTEND?"}, []string{"web1.example.com"}},
		{"braces", []string{"{db1,stage1}"}, []string{"db1", "stage1"}},
		{"nested braces", []string{"{db{1,2},stage*}"}, []string{"db1", "DB2", "stage1"}},
		{"set", []string{"web[12].example.com"}, []string{"web1.example.com", "web2.example.com"}},
		{"dedup first-seen", []string{"web3, db1 web3", "web"}, []string{"web3", "db1", "web1.example.com", "web2.example.com"}},
		{"several specs", []string{"db1", "Staging"}, []string{"db1", "web2.example.com", "stage1"}},
		{"@file", []string{"@testdata/targets.txt"}, []string{"db1", "web3", "stage1", "localhost"}},
		{"ad-hoc host:port", []string{"newhost:2222"}, []string{"newhost:2222"}},
		{"ad-hoc URI with scheme and brackets", []string{"ssh://bob:pw@[::1]:22"}, []string{"ssh://bob@[::1]:22"}},
		{"local://", []string{"local://"}, []string{"local://"}},
		{"inventory localhost", []string{"localhost"}, []string{"localhost"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Resolve(inv, tc.specs)
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tc.want, names(got)); d != "" {
				t.Errorf("(-want +got):\n%s", d)
			}
		})
	}
}

func TestResolveTargets(t *testing.T) {
	inv := loadInv(t)
	ts, err := Resolve(inv, []string{"web3,newhost:2222,ssh://bob:pw@[::1]:22,local://,db-primary"})
	if err != nil {
		t.Fatal(err)
	}
	type view struct {
		Name, URI, Transport, Host, User string
		Port                             int
		Groups                           []string
		Env                              any
	}
	var got []view
	for _, t := range ts {
		got = append(got, view{t.Name, t.URI, t.Transport, t.Host, t.User, t.Port, t.Groups, t.Vars["env"]})
	}
	want := []view{
		{"web3", "ssh://admin@10.0.0.3:2222", "ssh", "10.0.0.3", "admin", 2222, []string{"web", "all"}, "prod"},
		{"newhost:2222", "newhost:2222", "ssh", "newhost", "deploy", 2222, []string{"all"}, "prod"},
		{"ssh://bob@[::1]:22", "ssh://bob@[::1]:22", "ssh", "::1", "bob", 22, []string{"all"}, "prod"},
		{"local://", "local://", "local", "", "", 0, []string{"all"}, "prod"},
		{"db1", "", "ssh", "db1.internal", "deploy", 0, []string{"db", "all"}, "prod"},
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("(-want +got):\n%s", d)
	}
	if ts[0].TransportConfig()["password"] != "hunter2" || ts[2].TransportConfig()["password"] != "pw" {
		t.Errorf("passwords not in config.ssh: %v / %v", ts[0].Config, ts[2].Config)
	}
	ad, _ := Resolve(nil, []string{"localhost"})
	if len(ad) != 1 || ad[0].Transport != "local" || !ad[0].HasFeature("puppet-agent") {
		t.Errorf("ad-hoc localhost = %+v", ad)
	}
}

func TestResolveErrors(t *testing.T) {
	inv := loadInv(t)
	tests := []struct {
		name  string
		specs []string
		want  string
	}{
		{"nil", nil, "no targets given: pass a target name, group, alias, glob or URI"},
		{"only separators", []string{"", " , "}, "no targets given: pass a target name, group, alias, glob or URI"},
		{"glob matches nothing", []string{"db1,nomatch*"}, `no targets match "nomatch*" (checked 5 groups, 7 targets and their aliases)`},
		{"brace matches nothing", []string{"{x,y}"}, `no targets match "{x,y}" (checked 5 groups, 7 targets and their aliases)`},
		{"bare IPv6 is a glob", []string{"[::1]:22"},
			`no targets match "[::1]:22" (checked 5 groups, 7 targets and their aliases); for an ad-hoc target write ssh://[::1]:22`},
		{"bad glob", []string{"web}*"}, `invalid glob pattern "web}*": unmatched "}"`},
		{"bad ad-hoc port", []string{"ssh://bob:hunter2@h:notaport"}, `invalid target "ssh://bob@h:notaport": uri has an invalid port (want 1-65535)`},
		{"bad ad-hoc", []string{"a:b:c"}, `invalid target "a:b:c": uri has too many ":" (write IPv6 addresses as [addr]:port)`},
		{"unknown transport", []string{"telnet://h"}, `target "telnet://h": unknown transport "telnet"`},
		{"missing file", []string{"@testdata/missing.txt"}, "cannot read targets from @testdata/missing.txt: no such file or directory"},
		{"unclosed", []string{"web{1"}, `invalid target spec "web{1": unclosed "{"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Resolve(inv, tc.specs)
			if err == nil {
				t.Fatalf("no error, want %s", tc.want)
			}
			if err.Error() != tc.want {
				t.Errorf("error\n got: %s\nwant: %s", err, tc.want)
			}
			if muster.KindOf(err) != muster.KindInvalid {
				t.Errorf("kind = %q", muster.KindOf(err))
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("password in error")
			}
		})
	}
}
