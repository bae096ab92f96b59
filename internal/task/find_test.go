package task

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/muster-run/muster"
)

func testIndex(t *testing.T) *Index {
	t.Helper()
	idx, err := Find([]string{"testdata/modules", "testdata/missing", "testdata/modules2"})
	if err != nil {
		t.Fatal(err)
	}
	return idx
}

func names(ts []*Task) []string {
	var out []string
	for _, t := range ts {
		out = append(out, t.Name)
	}
	return out
}

func TestFindList(t *testing.T) {
	idx := testIndex(t)
	want := []string{"badmeta::t", "extra", "mymod", "mymod::dup", "mymod::hello", "mymod::sql", "mymod::sql_agent",
		"mymod::withfiles", "other::win", "other::x"}
	if diff := cmp.Diff(want, names(idx.List(false))); diff != "" {
		t.Errorf("List(false) (-want +got):\n%s", diff)
	}
	all := names(idx.List(true))
	if len(all) != len(want)+1 || !strings.Contains(strings.Join(all, " "), "mymod::secret") {
		t.Errorf("List(true) = %v", all)
	}
	if idx.Modules["mymod"] != filepath.Join("testdata/modules", "mymod") || idx.Modules["Bad_Mod"] != "" {
		t.Errorf("modules: %v", idx.Modules)
	}
}

func TestFindGet(t *testing.T) {
	idx := testIndex(t)
	init, err := idx.Get("mymod")
	if err != nil || init.Description() != "The module task" || init.Module != "mymod" {
		t.Fatalf("Get(mymod) = %+v, %v", init, err)
	}
	if diff := cmp.Diff(map[string]string{"init.sh": filepath.Join("testdata/modules/mymod/tasks/init.sh")}, init.Executables); diff != "" {
		t.Error(diff)
	}
	hello, err := idx.Get("mymod::hello")
	if err != nil || len(hello.Warnings) != 1 || !strings.Contains(hello.Warnings[0], `unknown field "colour"`) {
		t.Fatalf("Get(mymod::hello) = %+v, %v", hello, err)
	}
	for name, want := range map[string]string{
		"mymod::helo":   `could not find a task named "mymod::helo"; did you mean "mymod::hello"?`,
		"nothing::here": `could not find a task named "nothing::here"; run 'muster task show' for the list of tasks`,
		"mymod::shadow": `could not find a task named "mymod::shadow"`, // first module on the path wins
		"mymod::dup":    "task mymod::dup has several executables (dup.py, dup.sh) but its metadata lists no implementations to choose between them",
		"badmeta::t":    `task badmeta::t: testdata/modules/badmeta/tasks/t.json:3:22: parameter "port": unknown type "Integr" at offset 0 (did you mean "Integer"?)`,
		"mymod::README": `could not find a task named "mymod::README"`,
	} {
		_, err := idx.Get(name)
		if err == nil || !strings.HasPrefix(err.Error(), want) {
			t.Errorf("Get(%s) = %v, want %q", name, err, want)
		}
		if muster.KindOf(err) != muster.KindInvalid {
			t.Errorf("Get(%s) kind %q", name, muster.KindOf(err))
		}
	}
}

func TestSelect(t *testing.T) {
	idx := testIndex(t)
	sql, _ := idx.Get("mymod::sql")
	for _, tc := range []struct {
		features   []string
		name, meth string
	}{
		{[]string{"shell", "puppet-agent"}, "sql_agent.sh", InputEnvironment},
		{[]string{"shell"}, "sql.sh", InputBoth},
		{[]string{"powershell"}, "sql.ps1", InputPowerShell},
	} {
		im, err := sql.Select("web1", tc.features)
		if err != nil || im.Name != tc.name || im.InputMethod != tc.meth || im.Path != filepath.Join("testdata/modules/mymod/tasks", tc.name) {
			t.Errorf("Select(%v) = %+v, %v", tc.features, im, err)
		}
	}
	_, err := sql.Select("web1", []string{"docker"})
	if err == nil || err.Error() != "No suitable implementation of mymod::sql for target web1 (features: docker)" ||
		muster.KindOf(err) != KindNoImplementation {
		t.Errorf("Select(docker) = %v", err)
	}
	win, _ := idx.Get("other::win")
	if _, err := win.Select("web1", []string{"shell", "puppet-agent"}); err == nil ||
		err.Error() != "No suitable implementation of other::win for target web1 (features: shell, puppet-agent)" {
		t.Errorf("Select ps1 on shell = %v", err)
	}
	if im, err := win.Select("w", []string{"powershell"}); err != nil || im.InputMethod != InputPowerShell {
		t.Errorf("Select ps1 = %+v %v", im, err)
	}
	wf, _ := idx.Get("mymod::withfiles")
	if im, err := wf.Select("w", []string{"shell"}); err != nil || im.InputMethod != InputStdin || !wf.HasFiles(im) {
		t.Errorf("Select withfiles = %+v %v", im, err)
	}
	if _, err := wf.Select("w", nil); err == nil || !strings.HasSuffix(err.Error(), "(features: none)") {
		t.Errorf("Select without features = %v", err)
	}
}

func TestResolveFiles(t *testing.T) {
	idx := testIndex(t)
	wf, _ := idx.Get("mymod::withfiles")
	files, err := wf.ResolveFiles(idx)
	if err != nil {
		t.Fatal(err)
	}
	want := []File{
		{filepath.FromSlash("testdata/modules/mymod/files/data.txt"), "mymod/files/data.txt"},
		{filepath.FromSlash("testdata/modules/other/lib/helpers/a.rb"), "other/lib/helpers/a.rb"},
		{filepath.FromSlash("testdata/modules/other/lib/helpers/sub/b.rb"), "other/lib/helpers/sub/b.rb"},
	}
	if diff := cmp.Diff(want, files); diff != "" {
		t.Errorf("ResolveFiles (-want +got):\n%s", diff)
	}
	im, _ := wf.Select("w", []string{"shell"})
	all, err := wf.InstallFiles(idx, im)
	if err != nil || len(all) != 4 || all[1].InstallPath != "mymod/tasks/withfiles.sh" {
		t.Errorf("InstallFiles = %+v %v", all, err)
	}
	sql, _ := idx.Get("mymod::sql")
	ps, _ := sql.Select("w", []string{"powershell"})
	if !sql.HasFiles(ps) {
		t.Error("implementation files not seen")
	}
	if all, err := sql.InstallFiles(idx, ps); err != nil || len(all) != 2 || all[0].InstallPath != "mymod/files/data.txt" {
		t.Errorf("InstallFiles(sql.ps1) = %+v %v", all, err)
	}

	for entry, want := range map[string]string{
		"mymod/data.txt":          "must be <module>/<files|tasks|lib|scripts>/<path>",
		"mymod/secrets/x":         "must be <module>/<files|tasks|lib|scripts>/<path>",
		"mymod/files/../tasks/x":  "the path must be relative and clean",
		"mymod/files//etc/passwd": "the path must be relative and clean",
		"nomod/files/x":           `module "nomod" is not on the module path`,
		"mymod/files/nope":        "no such file",
		"other/lib/helpers":       "is a directory: end it with / to ship a directory",
		"mymod/files/data.txt/":   "is not a directory",
	} {
		tk := &Task{Name: "m::t", Metadata: &Metadata{Files: []string{entry}}}
		_, err := tk.ResolveFiles(idx)
		if err == nil || !strings.Contains(err.Error(), want) || muster.KindOf(err) != muster.KindFile {
			t.Errorf("ResolveFiles(%q) = %v, want %q", entry, err, want)
		}
	}
}
