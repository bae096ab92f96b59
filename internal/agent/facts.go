package agent

// facts.go: the facts an agent uploads when a check-in's answer asks for
// them (UploadFacts), in Facter's layout for the names it shares with
// Facter (os.family, os.release.major, networking.fqdn, ...), so that
// pull.yaml matches and later fact filters read the same keys whether a
// node runs Facter or not. A facts command (`facter --json`, or any
// program printing a JSON object) adds to them and wins on conflicts.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/muster-run/muster"
	"github.com/muster-run/muster/internal/checkin"
)

// factsCommandTimeout bounds a facts command.
const factsCommandTimeout = time.Minute

// Gather returns this machine's facts, with command's (run by sh -c, its
// standard output a JSON object) merged over them when command is set.
func Gather(ctx context.Context, certname, command string) (map[string]any, error) {
	facts := nativeFacts(certname)
	if command == "" {
		return facts, nil
	}
	ctx, cancel := context.WithTimeout(ctx, factsCommandTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "/bin/sh", "-c", command)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return facts, fmt.Errorf("facts command %q: %v: %s", command, err, strings.TrimSpace(lastLine(stderr.String())))
	}
	var extra map[string]any
	if err := json.Unmarshal(out, &extra); err != nil || extra == nil {
		return facts, fmt.Errorf("facts command %q: its output is not a JSON object", command)
	}
	for k, v := range extra {
		facts[k] = v
	}
	return facts, nil
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}

// nativeFacts reads what the agent can know without running anything.
func nativeFacts(certname string) map[string]any {
	osf := osFacts(readOSRelease("/etc/os-release"), readFile("/etc/debian_version"))
	var u syscall.Utsname
	kernel, release, machine := runtime.GOOS, "", runtime.GOARCH
	if syscall.Uname(&u) == nil {
		kernel, release, machine = utsString(u.Sysname[:]), utsString(u.Release[:]), utsString(u.Machine[:])
	}
	osf["hardware"] = machine
	osf["architecture"] = architecture(osf["family"], machine)
	host, _ := os.Hostname()
	fqdn := host
	if !strings.Contains(host, ".") {
		if domain := searchDomain(readFile("/etc/resolv.conf")); domain != "" {
			fqdn = host + "." + domain
		}
	}
	domain := ""
	if i := strings.IndexByte(fqdn, '.'); i >= 0 {
		domain = fqdn[i+1:]
	}
	facts := map[string]any{
		"os":            osf,
		"kernel":        capitalise(kernel),
		"kernelrelease": release,
		"kernelversion": strings.SplitN(release, "-", 2)[0],
		"networking":    map[string]any{"hostname": strings.SplitN(host, ".", 2)[0], "fqdn": fqdn, "domain": domain, "ip": primaryIP()},
		"processors":    map[string]any{"count": runtime.NumCPU()},
		"muster":        map[string]any{"agent_version": muster.Version, "certname": certname},
	}
	if total, ok := memTotal(readFile("/proc/meminfo")); ok {
		facts["memory"] = map[string]any{"system": map[string]any{"total_bytes": total}}
	}
	if up, ok := uptime(readFile("/proc/uptime")); ok {
		facts["system_uptime"] = map[string]any{"seconds": up}
	}
	return facts
}

func readFile(path string) string {
	b, _ := os.ReadFile(path)
	return string(b)
}

func utsString(b []int8) string {
	out := make([]byte, 0, len(b))
	for _, c := range b {
		if c == 0 {
			break
		}
		out = append(out, byte(c))
	}
	return string(out)
}

// readOSRelease parses an os-release file into its keys.
func readOSRelease(path string) map[string]string {
	return parseOSRelease(readFile(path))
}

func parseOSRelease(text string) map[string]string {
	kv := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		k, v, ok := strings.Cut(line, "=")
		if !ok || strings.HasPrefix(line, "#") {
			continue
		}
		if uq, err := strconv.Unquote(v); err == nil {
			v = uq
		} else {
			v = strings.Trim(v, `"'`)
		}
		kv[k] = v
	}
	return kv
}

// facterNames maps os-release IDs to Facter's os.name and os.family.
var facterNames = map[string][2]string{
	"debian": {"Debian", "Debian"}, "ubuntu": {"Ubuntu", "Debian"}, "linuxmint": {"LinuxMint", "Debian"},
	"raspbian": {"Raspbian", "Debian"}, "rhel": {"RedHat", "RedHat"}, "centos": {"CentOS", "RedHat"},
	"fedora": {"Fedora", "RedHat"}, "rocky": {"Rocky", "RedHat"}, "almalinux": {"AlmaLinux", "RedHat"},
	"ol": {"OracleLinux", "RedHat"}, "amzn": {"Amazon", "RedHat"}, "sles": {"SLES", "Suse"},
	"opensuse-leap": {"OpenSuSE", "Suse"}, "arch": {"Archlinux", "Archlinux"}, "alpine": {"Alpine", "Alpine"},
}

// osFacts builds Facter's os fact from os-release (and, on Debian, the
// point release in /etc/debian_version).
func osFacts(rel map[string]string, debianVersion string) map[string]any {
	id := rel["ID"]
	name, family := capitalise(id), capitalise(id)
	if n, ok := facterNames[id]; ok {
		name, family = n[0], n[1]
	} else {
		for _, like := range strings.Fields(rel["ID_LIKE"]) {
			if n, ok := facterNames[like]; ok {
				family = n[1]
				break
			}
		}
	}
	full := rel["VERSION_ID"]
	if dv := strings.TrimSpace(debianVersion); id == "debian" && dv != "" && dv[0] >= '0' && dv[0] <= '9' {
		full = dv
	}
	major, minor, _ := strings.Cut(full, ".")
	release := map[string]any{"full": full, "major": major}
	if minor != "" {
		release["minor"] = strings.SplitN(minor, ".", 2)[0]
	}
	return map[string]any{
		"name": name, "family": family, "release": release,
		"distro": map[string]any{"id": id, "codename": rel["VERSION_CODENAME"], "description": rel["PRETTY_NAME"]},
	}
}

// architecture is Facter's os.architecture: Debian's names on the Debian
// family, the kernel's elsewhere.
func architecture(family any, machine string) string {
	if family == "Debian" {
		switch machine {
		case "x86_64":
			return "amd64"
		case "aarch64":
			return "arm64"
		}
	}
	return machine
}

func capitalise(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// searchDomain returns resolv.conf's domain, else its first search domain.
func searchDomain(resolv string) string {
	search := ""
	for _, line := range strings.Split(resolv, "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		switch f[0] {
		case "domain":
			return f[1]
		case "search":
			if search == "" {
				search = f[1]
			}
		}
	}
	return search
}

// primaryIP is the address of the interface the default route would use
// (a UDP "connection" sends nothing), or "" when there is none.
func primaryIP() string {
	for _, iface := range mustInterfaces() {
		if iface.Flags&net.FlagUp == 0 || iface.Flags&net.FlagLoopback != 0 {
			continue
		}
		addrs, _ := iface.Addrs()
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil {
				return ipn.IP.String()
			}
		}
	}
	return ""
}

func mustInterfaces() []net.Interface {
	ifs, _ := net.Interfaces()
	return ifs
}

func memTotal(meminfo string) (int64, bool) {
	for _, line := range strings.Split(meminfo, "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "MemTotal:" {
			kb, err := strconv.ParseInt(f[1], 10, 64)
			return kb * 1024, err == nil
		}
	}
	return 0, false
}

func uptime(text string) (int64, bool) {
	f := strings.Fields(text)
	if len(f) == 0 {
		return 0, false
	}
	s, err := strconv.ParseFloat(f[0], 64)
	return int64(s), err == nil
}

// uploadFacts gathers and sends the node's facts; a failure is logged and
// retried when the server asks again.
func (a *Agent) uploadFacts(ctx context.Context) {
	facts, err := Gather(ctx, a.cfg.Certname, a.cfg.FactsCommand)
	if err != nil {
		a.log.Warn("gathering facts (sending the rest)", "err", err)
	}
	var resp checkin.FactsResponse
	if err := a.currentClient().post(ctx, checkin.PathFacts, checkin.FactsUpload{Version: checkin.Version, Facts: facts}, &resp); err != nil {
		a.log.Warn("uploading facts failed; the server will ask again", "err", err)
		return
	}
	a.log.Debug("facts uploaded", "stored_at", resp.StoredAt)
}
