package inventory

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

// pdbClient queries PuppetDB's /pdb/query/v4 API, as Bolt's client does.
type pdbClient struct {
	urls  []string
	token string
	http  *http.Client
}

// pdbTemplateKeys are the target keys a puppetdb target_mapping may set.
var pdbTemplateKeys = []string{"alias", "config", "facts", "features", "name", "uri", "vars"}

// newPDBClient reads the connection: server_urls, cacert, cert, key,
// token (a file holding an RBAC token), connect_timeout, read_timeout.
func (rs *resolver) newPDBClient() (*pdbClient, error) {
	cfg := rs.opts.PuppetDB
	if cfg == nil {
		cfg = rs.opts.Plugins["puppetdb"]
	}
	if cfg == nil {
		return nil, fmt.Errorf("PuppetDB is not configured: set puppetdb.server_urls (and cacert, cert, key or token) in the project configuration")
	}
	str := func(k string) (string, error) {
		v, ok := cfg[k]
		if !ok || v == nil {
			return "", nil
		}
		s, ok := v.(string)
		if !ok {
			return "", fmt.Errorf("puppetdb config: %s must be a string, not %s", k, kindOf(v))
		}
		return s, nil
	}
	c := &pdbClient{}
	switch u := cfg["server_urls"].(type) {
	case string:
		c.urls = []string{u}
	case []any:
		for _, e := range u {
			s, ok := e.(string)
			if !ok {
				return nil, fmt.Errorf("puppetdb config: server_urls must be a list of URLs")
			}
			c.urls = append(c.urls, s)
		}
	}
	if len(c.urls) == 0 {
		return nil, fmt.Errorf("puppetdb config: server_urls is required")
	}
	for i, u := range c.urls {
		c.urls[i] = strings.TrimRight(u, "/")
	}
	tlsc := &tls.Config{MinVersion: tls.VersionTLS12}
	cacert, err := str("cacert")
	if err != nil {
		return nil, err
	}
	if cacert != "" {
		b, err := os.ReadFile(rs.path(cacert))
		if err != nil {
			return nil, fmt.Errorf("puppetdb config: cannot read cacert: %v", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(b) {
			return nil, fmt.Errorf("puppetdb config: cacert %s holds no PEM certificate", rs.path(cacert))
		}
		tlsc.RootCAs = pool
	} else if strings.HasPrefix(c.urls[0], "https:") {
		return nil, fmt.Errorf("puppetdb config: cacert is required for an https server")
	}
	cert, err := str("cert")
	if err != nil {
		return nil, err
	}
	key, err := str("key")
	if err != nil {
		return nil, err
	}
	if (cert == "") != (key == "") {
		return nil, fmt.Errorf("puppetdb config: cert and key go together: set both or neither")
	}
	if cert != "" {
		pair, err := tls.LoadX509KeyPair(rs.path(cert), rs.path(key))
		if err != nil {
			return nil, fmt.Errorf("puppetdb config: cannot load cert and key: %v", err)
		}
		tlsc.Certificates = []tls.Certificate{pair}
	}
	tok, err := str("token")
	if err != nil {
		return nil, err
	}
	if tok != "" {
		b, err := os.ReadFile(rs.path(tok))
		if err != nil {
			return nil, fmt.Errorf("puppetdb config: cannot read token file: %v", errors.Unwrap(err))
		}
		c.token = strings.TrimSpace(string(b))
	}
	timeout := func(k string) (time.Duration, error) {
		v, ok := cfg[k]
		if !ok || v == nil {
			return 60 * time.Second, nil
		}
		n, ok := v.(int)
		if !ok || n < 1 {
			return 0, fmt.Errorf("puppetdb config: %s must be a positive number of seconds", k)
		}
		return time.Duration(n) * time.Second, nil
	}
	connect, err := timeout("connect_timeout")
	if err != nil {
		return nil, err
	}
	read, err := timeout("read_timeout")
	if err != nil {
		return nil, err
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = tlsc
	tr.TLSHandshakeTimeout = connect
	tr.ResponseHeaderTimeout = read
	c.http = &http.Client{Transport: tr}
	return c, nil
}

// query posts a query to /pdb/query/v4[/endpoint], trying each server in
// turn when one cannot be reached.
func (c *pdbClient) query(rs *resolver, endpoint string, q any) ([]map[string]any, error) {
	body, err := json.Marshal(map[string]any{"query": q})
	if err != nil {
		return nil, err
	}
	var lastErr error
	for _, base := range c.urls {
		url := base + "/pdb/query/v4"
		if endpoint != "" {
			url += "/" + endpoint
		}
		req, err := http.NewRequestWithContext(rs.context(), http.MethodPost, url, bytes.NewReader(body))
		if err != nil {
			return nil, err
		}
		req.Header.Set("Content-Type", "application/json")
		if c.token != "" {
			req.Header.Set("X-Authentication", c.token)
		}
		resp, err := c.http.Do(req)
		if err != nil {
			lastErr = fmt.Errorf("cannot reach PuppetDB at %s: %v", base, err)
			continue
		}
		b, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
		resp.Body.Close()
		if err != nil {
			return nil, fmt.Errorf("PuppetDB at %s: %v", base, err)
		}
		if resp.StatusCode != http.StatusOK {
			msg := strings.TrimSpace(string(b))
			if len(msg) > 500 {
				msg = msg[:500] + "..."
			}
			return nil, fmt.Errorf("PuppetDB query failed (%s from %s): %s", resp.Status, url, msg)
		}
		var rows []map[string]any
		if err := json.Unmarshal(b, &rows); err != nil {
			return nil, fmt.Errorf("PuppetDB at %s: the answer is not a list of results: %v", base, err)
		}
		for _, r := range rows {
			normalizeJSON(r)
		}
		return rows, nil
	}
	return nil, lastErr
}

// factPath turns "facts.os.family" into ["os", "family"] (integer
// segments become indexes); "certname" is the node's name.
func factPath(s string) ([]any, error) {
	if s == "certname" {
		return nil, nil
	}
	parts := strings.Split(s, ".")
	if parts[0] != "facts" || len(parts) < 2 {
		return nil, fmt.Errorf("fact lookup %q must be \"certname\" or start with \"facts.\"", s)
	}
	out := make([]any, 0, len(parts)-1)
	for _, p := range parts[1:] {
		if n, err := strconv.Atoi(p); err == nil {
			out = append(out, n)
		} else {
			out = append(out, p)
		}
	}
	return out, nil
}

// puppetdb: targets from a PQL query; target_mapping fills target keys
// from the nodes' facts ("facts.networking.ip", or "certname").
func puppetdbPlugin(rs *resolver, _ *ref, params map[string]any, _ string) (any, error) {
	for _, k := range pdbTemplateKeys {
		if _, ok := params[k]; ok {
			return nil, fmt.Errorf("%q must be set under target_mapping", k)
		}
	}
	if err := onlyParams(params, "query", "target_mapping", "instance"); err != nil {
		return nil, err
	}
	if inst, _ := params["instance"].(string); inst != "" {
		return nil, fmt.Errorf("named PuppetDB instances are not supported (instance %q): configure the default connection", inst)
	}
	q, ok := params["query"]
	if !ok || q == nil {
		return nil, fmt.Errorf("parameter \"query\" is required: a PQL query string")
	}
	switch q.(type) {
	case string, []any:
	default:
		return nil, fmt.Errorf("parameter \"query\" must be a PQL string or an AST query list, not %s", kindOf(q))
	}
	tmpl := map[string]any{}
	if m, ok := params["target_mapping"]; ok && m != nil {
		if tmpl, ok = m.(map[string]any); !ok {
			return nil, fmt.Errorf("parameter \"target_mapping\" must be a mapping, not %s", kindOf(m))
		}
		if err := onlyParams(tmpl, pdbTemplateKeys...); err != nil {
			return nil, fmt.Errorf("target_mapping: %v", err)
		}
	}
	// collect the fact paths the template needs, for one fact-contents query
	var paths [][]any
	seen := map[string]bool{}
	var walk func(v any) error
	walk = func(v any) error {
		switch x := v.(type) {
		case string:
			p, err := factPath(x)
			if err != nil {
				return err
			}
			if p != nil && !seen[x] {
				seen[x] = true
				paths = append(paths, p)
			}
		case map[string]any:
			for _, k := range sortedKeys(x) {
				if err := walk(x[k]); err != nil {
					return err
				}
			}
		case []any:
			for _, e := range x {
				if err := walk(e); err != nil {
					return err
				}
			}
		default:
			return fmt.Errorf("target_mapping: fact lookups must be strings, not %s", kindOf(v))
		}
		return nil
	}
	if err := walk(tmpl); err != nil {
		return nil, err
	}
	rs.pdbOnce.Do(func() { rs.pdb, rs.pdbErr = rs.newPDBClient() })
	if rs.pdbErr != nil {
		return nil, rs.pdbErr
	}
	rows, err := rs.pdb.query(rs, "", q)
	if err != nil {
		return nil, err
	}
	var certnames []string
	have := map[string]bool{}
	for _, r := range rows {
		c, ok := r["certname"].(string)
		if !ok {
			return nil, fmt.Errorf("query results have no \"certname\" field (got %s): project certname, e.g. \"inventory[certname] {...}\"", strings.Join(sortedKeys(r), ", "))
		}
		if !have[c] {
			have[c] = true
			certnames = append(certnames, c)
		}
	}
	facts := map[string][]map[string]any{}
	if len(certnames) > 0 && len(paths) > 0 {
		names := []any{"or"}
		for _, c := range certnames {
			names = append(names, []any{"=", "certname", c})
		}
		ps := []any{"or"}
		for _, p := range paths {
			ps = append(ps, []any{"=", "path", p})
		}
		fr, err := rs.pdb.query(rs, "fact-contents", []any{"and", names, ps})
		if err != nil {
			return nil, err
		}
		for _, r := range fr {
			c, _ := r["certname"].(string)
			facts[c] = append(facts[c], r)
		}
	}
	out := make([]any, 0, len(certnames))
	for _, c := range certnames {
		t, _ := rs.pdbFill(tmpl, c, facts[c]).(map[string]any)
		if t["uri"] == nil && t["name"] == nil {
			t["uri"] = c
		}
		out = append(out, t)
	}
	return out, nil
}

// pdbFill replaces each fact lookup of the template with the node's value.
func (rs *resolver) pdbFill(v any, certname string, facts []map[string]any) any {
	switch x := v.(type) {
	case string:
		if x == "certname" {
			return certname
		}
		want, _ := factPath(x)
		wj, _ := json.Marshal(want)
		for _, f := range facts {
			if pj, _ := json.Marshal(f["path"]); bytes.Equal(pj, wj) {
				return f["value"]
			}
		}
		if rs.opts.Warnf != nil {
			rs.opts.Warnf("puppetdb plugin: could not find fact %s for node %s", x, certname)
		}
		return nil
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = rs.pdbFill(e, certname, facts)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = rs.pdbFill(e, certname, facts)
		}
		return out
	}
	return v
}
