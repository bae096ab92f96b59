package ssh

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/kevinburke/ssh_config"

	"github.com/muster-run/muster"
	"github.com/muster-run/muster/internal/inventory"
)

// params is everything needed to reach one endpoint, after merging the
// target, its ssh config section, ~/.ssh/config and the defaults.
type params struct {
	name       string // target name, for messages
	alias      string // the host as written, for ~/.ssh/config lookups
	host       string
	port       int
	user       string
	keyFile    string // private key path
	keyData    string // inline private key
	password   string
	useAgent   bool
	hostCheck  bool
	knownHosts []string
	// knownHostsSet: knownHosts came from the known-hosts setting, not
	// from the defaults.
	knownHostsSet bool
	timeout       time.Duration
	jump          *params
}

// addr returns host:port.
func (p *params) addr() string { return net.JoinHostPort(p.host, strconv.Itoa(p.port)) }

// poolKey identifies a connection: endpoint, identity and route.
func (p *params) poolKey() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s@%s", p.user, p.addr())
	b.WriteString("|k=" + p.keyFile)
	if p.keyData != "" {
		b.WriteString("|d=" + digest(p.keyData))
	}
	if p.password != "" {
		b.WriteString("|p=" + digest(p.password))
	}
	fmt.Fprintf(&b, "|a=%t|h=%t|%s", p.useAgent, p.hostCheck, strings.Join(p.knownHosts, ","))
	if p.jump != nil {
		b.WriteString("|via=" + p.jump.poolKey())
	}
	return b.String()
}

// describeAuth says, without secrets, how p authenticates and checks the
// host key, for debug messages.
func (p *params) describeAuth() string {
	var parts []string
	switch {
	case p.keyFile != "":
		parts = append(parts, "key "+p.keyFile)
	case p.keyData != "":
		parts = append(parts, "inline key")
	}
	if p.password != "" {
		parts = append(parts, "password")
	}
	if p.useAgent {
		parts = append(parts, "ssh-agent")
	}
	if p.hostCheck {
		parts = append(parts, "host keys from "+strings.Join(p.knownHosts, ", "))
	} else {
		parts = append(parts, "no host key check")
	}
	return strings.Join(parts, "; ")
}

// via names the bastion of p, "" for a direct connection.
func via(p *params) string {
	if p.jump == nil {
		return ""
	}
	return " via " + p.jump.user + "@" + p.jump.addr()
}

func digest(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:8])
}

// configError names the target and key of an invalid setting.
func configError(target, key, format string, args ...any) error {
	return muster.Errorf(muster.KindInvalid, "target %s: ssh config %q: %s", target, key, fmt.Sprintf(format, args...)).
		WithCode("INVALID_CONFIG")
}

func cfgString(target string, cfg map[string]any, key string) (string, bool, error) {
	v, ok := cfg[key]
	if !ok || v == nil {
		return "", false, nil
	}
	s, ok := v.(string)
	if !ok {
		return "", false, configError(target, key, "want a string, got %v", show(v))
	}
	return s, true, nil
}

func cfgInt(target string, cfg map[string]any, key string) (int, bool, error) {
	v, ok := cfg[key]
	if !ok || v == nil {
		return 0, false, nil
	}
	switch n := v.(type) {
	case int:
		return n, true, nil
	case int64:
		return int(n), true, nil
	case uint64:
		return int(n), true, nil
	case float64:
		if n == math.Trunc(n) {
			return int(n), true, nil
		}
	case string:
		if i, err := strconv.Atoi(strings.TrimSpace(n)); err == nil {
			return i, true, nil
		}
	}
	return 0, false, configError(target, key, "want an integer, got %v", show(v))
}

func cfgBool(target string, cfg map[string]any, key string) (bool, bool, error) {
	v, ok := cfg[key]
	if !ok || v == nil {
		return false, false, nil
	}
	switch b := v.(type) {
	case bool:
		return b, true, nil
	case string:
		if x, err := strconv.ParseBool(b); err == nil {
			return x, true, nil
		}
	}
	return false, false, configError(target, key, "want a boolean, got %v", show(v))
}

// cfgPaths reads a setting that names one file or a list of files; "~"
// is expanded.
func cfgPaths(target string, cfg map[string]any, key string) ([]string, error) {
	var raw []any
	switch v := cfg[key].(type) {
	case nil:
		return nil, nil
	case string:
		raw = []any{v}
	case []string:
		for _, s := range v {
			raw = append(raw, s)
		}
	case []any:
		raw = v
	default:
		return nil, configError(target, key, "want a file path or a list of them, got %v", show(v))
	}
	var out []string
	for _, x := range raw {
		s, ok := x.(string)
		if !ok || strings.TrimSpace(s) == "" {
			return nil, configError(target, key, "want a file path or a list of them, got %v", show(x))
		}
		out = append(out, expandHome(s))
	}
	return out, nil
}

// overlay returns tg's ssh config with Options.Override on top, and the
// user and port to connect with: a user or port written in tg's URI wins,
// then Override, then tg's own (inventory) settings.
func (t *Transport) overlay(tg *muster.Target) (cfg map[string]any, user string, port int) {
	cfg, user, port = tg.TransportConfig(), tg.User, tg.Port
	if len(t.opts.Override) == 0 {
		return cfg, user, port
	}
	var uriUser string
	var uriPort int
	if tg.URI != "" {
		if u, err := inventory.ParseURI(tg.URI); err == nil {
			uriUser, uriPort = u.User, u.Port
		}
	}
	merged := make(map[string]any, len(cfg)+len(t.opts.Override))
	for k, v := range cfg {
		merged[k] = v
	}
	for k, v := range t.opts.Override {
		switch k {
		case "user":
			if uriUser != "" {
				continue
			}
			if s, ok := v.(string); ok {
				user = s
			}
		case "port":
			if uriPort != 0 {
				continue
			}
			if n, ok := v.(int); ok {
				port = n
			}
		}
		merged[k] = v
	}
	return merged, user, port
}

func show(v any) string {
	if s, ok := v.(string); ok {
		return strconv.Quote(s)
	}
	return fmt.Sprintf("%v (%T)", v, v)
}

// expandHome replaces a leading ~ with the home directory.
func expandHome(p string) string {
	if p == "~" || strings.HasPrefix(p, "~/") {
		if h, err := os.UserHomeDir(); err == nil {
			return filepath.Join(h, p[1:])
		}
	}
	return p
}

func currentUser() string {
	if u, err := user.Current(); err == nil {
		return u.Username
	}
	return os.Getenv("USER")
}

// sshConfigGet looks key up for alias, "" when unset or disabled.
func (t *Transport) sshConfigGet(load bool, alias, key string) string {
	if !load {
		return ""
	}
	c := t.sshConfig()
	if c == nil {
		return ""
	}
	v, err := c.Get(alias, key)
	if err != nil {
		return ""
	}
	return v
}

// sshConfig parses the ssh_config file once per Transport.
func (t *Transport) sshConfig() *ssh_config.Config {
	t.cfgOnce.Do(func() {
		path := t.opts.SSHConfigFile
		if path == "none" {
			return
		}
		f, err := os.Open(expandHome(path))
		if err != nil {
			return
		}
		defer f.Close()
		c, err := ssh_config.Decode(f)
		if err != nil {
			t.logf("ssh: ignoring %s: %v", path, err)
			return
		}
		t.cfg = c
	})
	return t.cfg
}

// resolve merges a target's settings into params.
func (t *Transport) resolve(tg *muster.Target) (*params, error) {
	cfg, tgUser, tgPort := t.overlay(tg)
	name := tg.Name
	load, set, err := cfgBool(name, cfg, "load-config")
	if err != nil {
		return nil, err
	}
	if !set {
		load = true
	}
	p := &params{name: name, useAgent: load && os.Getenv("SSH_AUTH_SOCK") != ""}

	host, _, err := cfgString(name, cfg, "host")
	if err != nil {
		return nil, err
	}
	if tg.Host != "" {
		host = tg.Host
	}
	if host == "" {
		host = name
	}
	p.alias = host
	p.host = host
	if hn := t.sshConfigGet(load, host, "HostName"); hn != "" {
		p.host = strings.ReplaceAll(strings.ReplaceAll(hn, "%h", host), "%%", "%")
	}

	port, set, err := cfgInt(name, cfg, "port")
	if err != nil {
		return nil, err
	}
	switch {
	case tgPort != 0:
		port = tgPort
	case set:
	case t.sshConfigGet(load, host, "Port") != "":
		if port, err = strconv.Atoi(t.sshConfigGet(load, host, "Port")); err != nil {
			return nil, configError(name, "port", "~/.ssh/config Port for %s is not a number", host)
		}
	default:
		port = 22
	}
	if port <= 0 || port > 65535 {
		return nil, configError(name, "port", "%d is not a valid port", port)
	}
	p.port = port

	u, _, err := cfgString(name, cfg, "user")
	if err != nil {
		return nil, err
	}
	if tgUser != "" {
		u = tgUser
	}
	if u == "" {
		u = t.sshConfigGet(load, host, "User")
	}
	if u == "" {
		u = currentUser()
	}
	p.user = u

	if p.password, _, err = cfgString(name, cfg, "password"); err != nil {
		return nil, err
	}
	switch k := cfg["private-key"].(type) {
	case nil:
		if f := t.sshConfigGet(load, host, "IdentityFile"); f != "" {
			p.keyFile = expandHome(f)
		}
	case string:
		p.keyFile = expandHome(k)
	case map[string]any:
		d, ok := k["key-data"].(string)
		if !ok {
			return nil, configError(name, "private-key", "a map needs a string \"key-data\"")
		}
		p.keyData = d
	default:
		return nil, configError(name, "private-key", "want a path or {key-data: ...}, got %v", show(k))
	}

	hc, set, err := cfgBool(name, cfg, "host-key-check")
	if err != nil {
		return nil, err
	}
	if !set {
		// "no"/"off" disable the check; "accept-new" is treated as strict:
		// muster never trusts a host key on first use silently.
		s := strings.ToLower(t.sshConfigGet(load, host, "StrictHostKeyChecking"))
		hc = s != "no" && s != "off"
	}
	p.hostCheck = hc
	kh, err := cfgPaths(name, cfg, "known-hosts")
	if err != nil {
		return nil, err
	}
	switch {
	case !p.hostCheck:
	case len(kh) > 0:
		// known-hosts names the only files to trust, so each must exist.
		for _, f := range kh {
			if _, err := os.Stat(f); err != nil {
				return nil, configError(name, "known-hosts", "cannot read %s: %v", f, errors.Unwrap(err))
			}
		}
		p.knownHosts, p.knownHostsSet = kh, true
	default:
		if f := t.sshConfigGet(load, host, "UserKnownHostsFile"); f != "" {
			for _, x := range strings.Fields(f) {
				p.knownHosts = append(p.knownHosts, expandHome(x))
			}
		}
		p.knownHosts = append(p.knownHosts, t.opts.KnownHostsFiles...)
	}

	secs, set, err := cfgInt(name, cfg, "connect-timeout")
	if err != nil {
		return nil, err
	}
	if !set {
		secs = 10
		if v := t.sshConfigGet(load, host, "ConnectTimeout"); v != "" {
			if n, err := strconv.Atoi(v); err == nil {
				secs = n
			}
		}
	}
	if secs <= 0 {
		return nil, configError(name, "connect-timeout", "want a positive number of seconds, got %d", secs)
	}
	p.timeout = time.Duration(secs) * time.Second

	jump, set, err := cfgString(name, cfg, "proxyjump")
	if err != nil {
		return nil, err
	}
	if !set {
		jump = t.sshConfigGet(load, host, "ProxyJump")
	}
	if jump != "" && jump != "none" {
		if p.jump, err = t.jumpParams(p, jump, load); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// jumpParams parses "[user@]host[:port]" for a bastion. The bastion uses
// the target's credentials and host key settings.
func (t *Transport) jumpParams(p *params, spec string, load bool) (*params, error) {
	if strings.Contains(spec, ",") {
		return nil, configError(p.name, "proxyjump", "only one jump host is supported, got %q", spec)
	}
	j := *p
	j.name = "jump host " + spec + " (for " + p.name + ")"
	j.jump = nil
	j.user = ""
	hostport := spec
	if i := strings.LastIndexByte(spec, '@'); i >= 0 {
		j.user, hostport = spec[:i], spec[i+1:]
	}
	j.host, j.port = hostport, 0
	if h, ps, err := net.SplitHostPort(hostport); err == nil {
		n, err := strconv.Atoi(ps)
		if err != nil || n <= 0 || n > 65535 {
			return nil, configError(p.name, "proxyjump", "bad port in %q", spec)
		}
		j.host, j.port = h, n
	}
	if j.host == "" {
		return nil, configError(p.name, "proxyjump", "want [user@]host[:port], got %q", spec)
	}
	j.alias = j.host
	if hn := t.sshConfigGet(load, j.alias, "HostName"); hn != "" {
		j.host = strings.ReplaceAll(hn, "%h", j.alias)
	}
	if j.port == 0 {
		j.port = 22
		if v := t.sshConfigGet(load, j.alias, "Port"); v != "" {
			if n, err := strconv.Atoi(v); err == nil {
				j.port = n
			}
		}
	}
	if j.user == "" {
		if j.user = t.sshConfigGet(load, j.alias, "User"); j.user == "" {
			j.user = currentUser()
		}
	}
	return &j, nil
}
