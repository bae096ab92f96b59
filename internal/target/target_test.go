package target

import (
	"fmt"
	"os"
	"path/filepath"
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
		{"glob over groups and targets", []string{"web*"}, []string{"web1.example.com", "web2.example.com", "web3"}},
		{"glob over groups, targets, aliases", []string{"db*"}, []string{"db1", "DB2"}},
		{"glob is case-insensitive", []string{"stag*"}, []string{"web2.example.com", "stage1"}},
		{"glob on alias", []string{"FRONTEND?"}, []string{"web1.example.com"}},
		{"braces", []string{"{db1,stage1}"}, []string{"db1", "stage1"}},
		{"nested braces", []string{"{db{1,2},stage*}"}, []string{"db1", "DB2", "stage1"}},
		{"set", []string{"web[12].example.com"}, []string{"web1.example.com", "web2.example.com"}},
		{"dedup first-seen", []string{"web3, db1 web3", "web"}, []string{"web3", "db1", "web1.example.com", "web2.example.com"}},
		{"several specs", []string{"db1", "Staging"}, []string{"db1", "web2.example.com", "stage1"}},
		{"ad-hoc name with a dot", []string{"new.example.com"}, []string{"new.example.com"}},
		{"ad-hoc user@name", []string{"deploy@newhost"}, []string{"deploy@newhost"}},
		{"ad-hoc bare name forced with a scheme", []string{"ssh://webb"}, []string{"ssh://webb"}},
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
		{"@file is not read", []string{"db1,@testdata/targets.txt"},
			`target "@testdata/targets.txt": target lists from files ("@path") are read by the command-line client, not here: pass names, groups, globs or URIs`},
		{"@file redacted", []string{"@u:hunter2@h"},
			`target "@u@h": target lists from files ("@path") are read by the command-line client, not here: pass names, groups, globs or URIs`},
		{"lone @", []string{"@"},
			`target "@": target lists from files ("@path") are read by the command-line client, not here: pass names, groups, globs or URIs`},
		{"typo of a group", []string{"webb"},
			`target "webb" matched nothing in the inventory testdata/inventory.yaml; did you mean "web" or "web3"? (to use an ad-hoc host of that name, write ssh://webb)`},
		{"typo, three suggestions", []string{"db3"},
			`target "db3" matched nothing in the inventory testdata/inventory.yaml; did you mean "db", "db1" or "DB2"? (to use an ad-hoc host of that name, write ssh://db3)`},
		{"exact lookup is case-sensitive", []string{"frontend1"},
			`target "frontend1" matched nothing in the inventory testdata/inventory.yaml; did you mean "Frontend1"? (to use an ad-hoc host of that name, write ssh://frontend1)`},
		{"typo of an alias", []string{"db-primray"},
			`target "db-primray" matched nothing in the inventory testdata/inventory.yaml; did you mean "db-primary"? (to use an ad-hoc host of that name, write ssh://db-primray)`},
		{"nothing close", []string{"zzzzzz"},
			`target "zzzzzz" matched nothing in the inventory testdata/inventory.yaml (checked 5 groups, 7 targets and their aliases); to use an ad-hoc host of that name, write ssh://zzzzzz`},
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

// TestResolveNeverReadsFiles: specs reach Resolve from the server's API, so
// an @file token must not read the file, nor show its content.
func TestResolveNeverReadsFiles(t *testing.T) {
	file := filepath.Join(t.TempDir(), "secret.txt")
	if err := os.WriteFile(file, []byte("s3cr3t-admin-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, inv := range []*inventory.Inventory{nil, loadInv(t)} {
		for _, spec := range []string{"@" + file, "@/etc/hostname", "web3, @" + file} {
			ts, err := Resolve(inv, []string{spec})
			if err == nil {
				t.Fatalf("Resolve(%q) = %v, want an error", spec, names(ts))
			}
			if strings.Contains(err.Error(), "s3cr3t") || muster.KindOf(err) != muster.KindInvalid {
				t.Errorf("Resolve(%q): %v (kind %q)", spec, err, muster.KindOf(err))
			}
			if !strings.Contains(err.Error(), "read by the command-line client") {
				t.Errorf("Resolve(%q): %v", spec, err)
			}
		}
	}
}

func TestExpandFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	nested := write("nested.txt", "a\n  b @other.txt\n")
	unclosed := write("unclosed.txt", "# header\nweb{1,2\n")
	big := write("big.txt", strings.Repeat("x", maxFileSize+1))
	tests := []struct {
		name  string
		specs []string
		want  []string
		err   string
	}{
		{"no files", []string{"web, db1", "stage*"}, []string{"web", "db1", "stage*"}, ""},
		{"file in order", []string{"web,@testdata/targets.txt", "DB2"}, []string{"web", "db1", "web3", "stage1", "localhost", "DB2"}, ""},
		{"escapes kept", []string{`a\,b`}, []string{`a\,b`}, ""},
		{"empty", []string{" "}, nil, ""},
		{"missing file", []string{"@testdata/missing.txt"}, nil, "cannot read targets from @testdata/missing.txt: no such file or directory"},
		{"nested", []string{"@" + nested}, nil, "@" + nested + ":2: nested @file targets are not supported"},
		{"bad line", []string{"@" + unclosed}, nil, "@" + unclosed + `:2: invalid target spec "web{1,2": unclosed "{"`},
		{"too large", []string{"@" + big}, nil, fmt.Sprintf("target file @%s is larger than %d bytes", big, maxFileSize)},
		{"lone @", []string{"@"}, nil, `target "@" names no file: write @path to read targets from a file`},
		{"bad spec", []string{"web{1"}, nil, `invalid target spec "web{1": unclosed "{"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ExpandFiles(tc.specs)
			if tc.err != "" {
				if err == nil || err.Error() != tc.err || muster.KindOf(err) != muster.KindInvalid {
					t.Fatalf("error = %v (kind %q), want %s", err, muster.KindOf(err), tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Errorf("(-want +got):\n%s", d)
			}
		})
	}
	// What ExpandFiles returns resolves like the file's names.
	specs, err := ExpandFiles([]string{"@testdata/targets.txt"})
	if err != nil {
		t.Fatal(err)
	}
	ts, err := Resolve(loadInv(t), specs)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([]string{"db1", "web3", "stage1", "localhost"}, names(ts)); d != "" {
		t.Errorf("(-want +got):\n%s", d)
	}
}

// TestBareNames: a bare word that matches nothing is a typo in a non-empty
// inventory, and an ad-hoc host in an empty one (as in Bolt).
func TestBareNames(t *testing.T) {
	onlyGroup, err := inventory.Parse("inv.yaml", []byte("groups: [{name: web}]\n"), inventory.Options{})
	if err != nil {
		t.Fatal(err)
	}
	onlyVars, err := inventory.Parse("inv.yaml", []byte("vars: {a: 1}\n"), inventory.Options{})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		inv  *inventory.Inventory
		spec string
		err  string // "" when the spec becomes one ad-hoc target of that name
	}{
		{"nil inventory", nil, "webb", ""},
		{"empty inventory", inventory.Empty(inventory.Options{}), "webb", ""},
		{"inventory with only vars", onlyVars, "webb", ""},
		{"inventory with an empty group", onlyGroup, "webb",
			`target "webb" matched nothing in the inventory inv.yaml; did you mean "web"? (to use an ad-hoc host of that name, write ssh://webb)`},
		{"no file name", func() *inventory.Inventory {
			inv, _ := inventory.Parse("", []byte("targets: [web1]\n"), inventory.Options{})
			return inv
		}(), "web2", `target "web2" matched nothing in the inventory; did you mean "web1"? (to use an ad-hoc host of that name, write ssh://web2)`},
		{"localhost", onlyGroup, "localhost", ""},
		{"port", onlyGroup, "webb:22", ""},
		{"scheme", onlyGroup, "ssh://webb", ""},
		{"user", onlyGroup, "root@webb", ""},
		{"dot", onlyGroup, "webb.example.com", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ts, err := Resolve(tc.inv, []string{tc.spec})
			if tc.err != "" {
				if err == nil || err.Error() != tc.err || muster.KindOf(err) != muster.KindInvalid {
					t.Fatalf("error = %v (kind %q), want %s", err, muster.KindOf(err), tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff([]string{tc.spec}, names(ts)); d != "" {
				t.Errorf("(-want +got):\n%s", d)
			}
		})
	}
}

// TestLocalhostTransport: localhost runs locally whatever transport the
// inventory's config sets, unless the inventory defines localhost itself.
func TestLocalhostTransport(t *testing.T) {
	tests := []struct {
		name, inv, spec, want string
	}{
		{"ad-hoc localhost, inventory transport ssh", "config: {transport: ssh}\ngroups: [{name: web, targets: [web1]}]\n", "localhost", "local"},
		{"ad-hoc localhost, no transport", "groups: [{name: web, targets: [web1]}]\n", "localhost", "local"},
		{"local://", "config: {transport: ssh}\ntargets: [web1]\n", "local://", "local"},
		{"ssh://localhost", "config: {transport: local}\ntargets: [web1]\n", "ssh://localhost", "ssh"},
		{"inventory localhost, inventory transport ssh", "config: {transport: ssh}\ntargets: [localhost]\n", "localhost", "ssh"},
		{"inventory localhost with its own transport", "targets: [{name: localhost, config: {transport: ssh}}]\n", "localhost", "ssh"},
		{"inventory localhost, defaults", "targets: [localhost]\n", "localhost", "local"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			inv, err := inventory.Parse("inventory.yaml", []byte(tc.inv), inventory.Options{})
			if err != nil {
				t.Fatal(err)
			}
			ts, err := Resolve(inv, []string{tc.spec})
			if err != nil {
				t.Fatal(err)
			}
			if len(ts) != 1 || ts[0].Transport != tc.want {
				t.Errorf("Resolve(%q) = %+v, want transport %s", tc.spec, ts[0], tc.want)
			}
		})
	}
}
