package apply

import (
	"context"
	"fmt"
	"strings"

	"github.com/muster-run/muster"
	"github.com/muster-run/muster/internal/action"
)

// Issue codes of a failed Prep (kind KindApply).
const (
	// IssuePuppetMissing: the target has no puppet command, and installing
	// was not allowed.
	IssuePuppetMissing = "PUPPET_MISSING"
	// IssueInstallFailed: installing the OS's package did not give a
	// working puppet command.
	IssueInstallFailed = "PUPPET_INSTALL_FAILED"
)

// Exit statuses of the prep script, besides 0 (Puppet is there).
const (
	prepMissing   = 3
	prepNotRoot   = 4
	prepNoManager = 5
	prepNoPackage = 6
)

// prepScript finds puppet (on PATH or in /opt/puppetlabs/bin). When it is
// missing and install is set, it installs the OS's package with the
// package manager it finds: puppet-agent where the repositories have it,
// else puppet (Debian and Ubuntu ship both names; Fedora and EPEL ship
// puppet; Puppet's own repositories puppet-agent).
func prepScript(install bool) []byte {
	var s strings.Builder
	s.WriteString(`#!/bin/sh
# muster apply prep: is Puppet here? (and install it when allowed)
PATH=/opt/puppetlabs/bin:$PATH:/usr/local/bin
export PATH
found() {
  p=$(command -v puppet 2>/dev/null) || return 1
  v=$(puppet --version 2>/dev/null </dev/null) || return 1
  echo "muster-prep: found $p $v"
  exit 0
}
found
`)
	if !install {
		fmt.Fprintf(&s, "echo \"muster-prep: no puppet command on PATH ($PATH)\" >&2\nexit %d\n", prepMissing)
		return []byte(s.String())
	}
	fmt.Fprintf(&s, `[ "$(id -u)" = 0 ] || { echo "muster-prep: installing Puppet needs root, and this runs as $(id -un): use --run-as root" >&2; exit %d; }
pick() { # pick CHECK-COMMAND: the first of puppet-agent and puppet that CHECK knows
  for p in puppet-agent puppet; do if "$@" "$p" >/dev/null 2>&1; then echo "$p"; return 0; fi; done
  return 1
}
if command -v apt-get >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  pkg=$(pick apt-cache show) || { apt-get update -qq >&2; pkg=$(pick apt-cache show); } || { echo "muster-prep: apt has neither puppet-agent nor puppet" >&2; exit %[2]d; }
  echo "muster-prep: installing $pkg with apt-get" >&2
  apt-get install -y -qq --no-install-recommends "$pkg" >&2
elif command -v dnf >/dev/null 2>&1; then
  pkg=$(pick dnf -q info) || { echo "muster-prep: dnf has neither puppet-agent nor puppet" >&2; exit %[2]d; }
  echo "muster-prep: installing $pkg with dnf" >&2
  dnf install -y -q "$pkg" >&2
elif command -v yum >/dev/null 2>&1; then
  pkg=$(pick yum -q info) || { echo "muster-prep: yum has neither puppet-agent nor puppet" >&2; exit %[2]d; }
  echo "muster-prep: installing $pkg with yum" >&2
  yum install -y -q "$pkg" >&2
elif command -v zypper >/dev/null 2>&1; then
  pkg=$(pick zypper -q info) || { echo "muster-prep: zypper has neither puppet-agent nor puppet" >&2; exit %[2]d; }
  echo "muster-prep: installing $pkg with zypper" >&2
  zypper -q --non-interactive install "$pkg" >&2
elif command -v apk >/dev/null 2>&1; then
  pkg=puppet
  echo "muster-prep: installing $pkg with apk" >&2
  apk add -q "$pkg" >&2
else
  echo "muster-prep: found no package manager (apt-get, dnf, yum, zypper, apk) to install Puppet with" >&2
  exit %[3]d
fi
echo "muster-prep: installed $pkg"
found
echo "muster-prep: installing $pkg gave no working puppet command" >&2
exit %[2]d
`, prepNotRoot, prepNoPackage, prepNoManager)
	return []byte(s.String())
}

// Prep is Bolt's apply_prep for one target: it checks that puppet runs
// there and, when install is set, installs the OS's puppet-agent or
// puppet package where it is missing (which needs root: run as root, or
// set run-as). The result (action "apply_prep") holds "puppet" (the
// command's path), "version" and "installed" (whether Prep installed it);
// a target without Puppet fails with kind KindApply and issue code
// IssuePuppetMissing or IssueInstallFailed. One channel per target.
func Prep(ctx context.Context, r *action.Runner, t *muster.Target, install bool, opts action.Options) *muster.Result {
	res := r.Script(ctx, t, "muster-apply-prep.sh", prepScript(install), nil, opts)
	out := &muster.Result{Target: t.Name, Action: "apply_prep", Value: map[string]any{}}
	if res.Error != nil && res.Error.Kind != muster.KindCommand {
		out.Error = res.Error
		return out
	}
	stdout, _ := res.Value["stdout"].(string)
	stderr, _ := res.Value["stderr"].(string)
	code := exitCode(res.Value["exit_code"])
	if code == 0 {
		for _, line := range strings.Split(stdout, "\n") {
			if rest, ok := strings.CutPrefix(line, "muster-prep: found "); ok {
				path, version, _ := strings.Cut(rest, " ")
				out.Value["puppet"] = path
				out.Value["version"] = strings.TrimSpace(version)
			}
		}
		out.Value["installed"] = strings.Contains(stdout, "muster-prep: installed ")
		if _, ok := out.Value["puppet"]; ok {
			return out
		}
	}
	why := lastPrepLine(stderr)
	switch code {
	case prepMissing:
		out.Error = muster.Errorf(KindApply, "Puppet is not installed on %s: install puppet-agent (or puppet), or let muster install the OS's package (muster apply prep --install)", t.Name).
			WithCode(IssuePuppetMissing)
	case prepNotRoot:
		out.Error = muster.Errorf(KindApply, "Puppet is not installed on %s, and %s", t.Name, why).WithCode(IssuePuppetMissing)
	default:
		if why == "" {
			why = fmt.Sprintf("the prep script exited with code %d", code)
		}
		out.Error = muster.Errorf(KindApply, "installing Puppet on %s failed: %s", t.Name, why).WithCode(IssueInstallFailed)
	}
	out.Error.WithDetail("exit_code", code)
	out.Value["stderr"] = stderr
	return out
}

// lastPrepLine returns the prep script's last message from stderr, or the
// last line of it.
func lastPrepLine(stderr string) string {
	lines := strings.Split(strings.TrimSpace(stderr), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if rest, ok := strings.CutPrefix(lines[i], "muster-prep: "); ok {
			return rest
		}
	}
	return strings.TrimSpace(lines[len(lines)-1])
}
