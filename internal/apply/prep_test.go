package apply

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/muster-run/muster/internal/action"
)

func TestPrepFindsPuppet(t *testing.T) {
	a, c, tg := localApplier(t, nil, false)
	res := Prep(context.Background(), a.Runner, tg, true, action.Options{})
	if !res.OK() || res.Value["installed"] != false || c.execs.Load() != 1 {
		t.Fatalf("prep: %+v %v after %d channels", res.Error, res.Value, c.execs.Load())
	}
	if p, _ := res.Value["puppet"].(string); filepath.Base(p) != "puppet" {
		t.Errorf("puppet at %q", p)
	}
	if v, _ := res.Value["version"].(string); !strings.HasPrefix(v, "7.") && !strings.HasPrefix(v, "8.") {
		t.Errorf("version %q", v)
	}
}

// fakeBin returns a directory for PATH holding links to the given commands
// of this machine and, with apt, an apt-cache and apt-get that "install"
// puppet-agent by writing a puppet command: the install branch runs for
// real without removing this machine's Puppet.
func fakeBin(t *testing.T, apt bool, links ...string) string {
	t.Helper()
	dir := t.TempDir()
	for _, l := range links {
		target := filepath.Join("/usr/bin", l)
		if _, err := os.Stat(target); err != nil {
			target = filepath.Join("/bin", l)
		}
		must(t, os.Symlink(target, filepath.Join(dir, l)))
	}
	if apt {
		must(t, os.WriteFile(filepath.Join(dir, "apt-cache"), []byte("#!/bin/sh\n[ \"$1 $2\" = 'show puppet-agent' ]\n"), 0o755))
		must(t, os.WriteFile(filepath.Join(dir, "apt-get"), []byte(`#!/bin/sh
[ "$DEBIAN_FRONTEND" = noninteractive ] || { echo "not noninteractive" >&2; exit 1; }
case "$*" in
  *"install -y -qq --no-install-recommends puppet-agent") ;;
  *) echo "unexpected: $*" >&2; exit 1 ;;
esac
d=$(cd "$(dirname "$0")" && pwd)
printf '#!/bin/sh\necho 7.99.0\n' >"$d/puppet"
chmod 755 "$d/puppet"
`), 0o755))
	}
	return dir
}

func TestPrepMissingAndInstall(t *testing.T) {
	a, _, tg := localApplier(t, nil, false)
	ctx := context.Background()

	noPuppet := fakeBin(t, false, "id")
	res := Prep(ctx, a.Runner, tg, false, action.Options{Env: map[string]string{"PATH": noPuppet}})
	if res.OK() || res.Error.Kind != KindApply || res.Error.IssueCode != IssuePuppetMissing ||
		!strings.Contains(res.Error.Msg, "Puppet is not installed on localhost") || !strings.Contains(res.Error.Msg, "--install") {
		t.Fatalf("prep without puppet: %+v", res.Error)
	}

	noManager := fakeBin(t, false, "id")
	res = Prep(ctx, a.Runner, tg, true, action.Options{Env: map[string]string{"PATH": noManager}})
	if res.OK() || res.Error.IssueCode != IssueInstallFailed || !strings.Contains(res.Error.Msg, "found no package manager") {
		t.Fatalf("prep without a package manager: %+v", res.Error)
	}

	withApt := fakeBin(t, true, "id", "dirname", "chmod")
	res = Prep(ctx, a.Runner, tg, true, action.Options{Env: map[string]string{"PATH": withApt}})
	if !res.OK() || res.Value["installed"] != true || res.Value["version"] != "7.99.0" || res.Value["puppet"] != filepath.Join(withApt, "puppet") {
		t.Fatalf("prep --install: %+v %v", res.Error, res.Value)
	}

	// Apply on a target without Puppet says so, naming the way out.
	ap := a.Apply(ctx, tg, "notify { 'x': }\n", Options{}, action.Options{Env: map[string]string{"PATH": noPuppet}})
	if ap.OK() || ap.Error.Kind != KindApply || !strings.Contains(ap.Error.Msg, "Puppet is not installed on localhost") {
		t.Fatalf("apply without puppet: %+v", ap.Error)
	}
}
