package inventory

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/muster-run/muster/internal/boltsecret"
)

// TestPKCS7Plugin decrypts a value made by the openssl CLI in Bolt's
// format with keys in Bolt's layout; the value is sensitive.
func TestPKCS7Plugin(t *testing.T) {
	dir := t.TempDir()
	cfg, err := boltsecret.NewConfig(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := boltsecret.CreateKeys(cfg, false); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("openssl", "smime", "-encrypt", "-aes256", "-binary", "-outform", "DER", cfg.PublicKey)
	cmd.Stdin = strings.NewReader("db-pass")
	der, err := cmd.Output()
	if err != nil {
		t.Fatalf("openssl: %v", err)
	}
	enc := boltsecret.Prefix + base64.StdEncoding.EncodeToString(der) + boltsecret.Suffix
	src := "targets:\n  - name: a\n    config:\n      ssh:\n        password:\n          _plugin: pkcs7\n          encrypted_value: >\n            " +
		enc[:40] + "\n            " + enc[40:] + "\n    vars:\n      plain: x\n"
	ts, inv, err := lookup(t, src, nil, Options{ProjectDir: dir}, "a")
	if err != nil {
		t.Fatal(err)
	}
	if got := ts[0].Config["ssh"].(map[string]any)["password"]; got != "db-pass" {
		t.Errorf("password %q", got)
	}
	if got := inv.Sensitive("a"); !reflect.DeepEqual(got, [][]string{{"config", "ssh", "password"}}) {
		t.Errorf("sensitive %v", got)
	}
	errs := []struct{ ref, want string }{
		{"{_plugin: pkcs7, encrypted_value: 'not encrypted'}", "expected ENC[PKCS7"},
		{"{_plugin: pkcs7}", `parameter "encrypted_value" is required`},
	}
	for _, e := range errs {
		_, _, err := lookup(t, "targets: [{name: a, vars: {v: "+e.ref+"}}]\n", nil, Options{ProjectDir: dir}, "a")
		if err == nil || !strings.Contains(err.Error(), e.want) {
			t.Errorf("%s: %v, want %q", e.ref, err, e.want)
		}
	}
	// keys elsewhere, from the plugin config; missing keys name the file
	opts := Options{Plugins: map[string]map[string]any{"pkcs7": {"private-key": "/nonexistent/priv.pem", "public-key": cfg.PublicKey}}}
	_, _, err = lookup(t, src, nil, opts, "a")
	if err == nil || !strings.Contains(err.Error(), "/nonexistent/priv.pem") {
		t.Errorf("missing key: %v", err)
	}
}

const tfState = `{
  "version": 4,
  "terraform_version": "1.5.7",
  "resources": [
    {"mode": "managed", "type": "aws_instance", "name": "web", "instances": [
      {"index_key": 0, "attributes": {"public_ip": "10.0.0.1", "tags": {"Name": "web-0"}, "user": "ubuntu", "nics": [{"ip": "192.168.0.1"}]}},
      {"index_key": 1, "attributes": {"public_ip": "10.0.0.2", "tags": {"Name": "web-1"}, "user": "ubuntu", "nics": [{"ip": "192.168.0.2"}]}}
    ]},
    {"mode": "managed", "type": "aws_instance", "name": "db", "instances": [
      {"attributes": {"public_ip": "10.0.1.1", "tags": {}, "user": "admin"}}
    ]},
    {"mode": "managed", "type": "aws_security_group", "name": "web", "instances": [{"attributes": {"id": "sg-1"}}]}
  ]
}`

func TestTerraformPlugin(t *testing.T) {
	files := map[string]string{"tf/terraform.tfstate": tfState, "tf/other.tfstate": tfState, "tf/bad.tfstate": "{"}
	tests := []struct {
		name, ref string
		want      []string // name uri user nic
		err       string
	}{
		{"regex and mapping", `{_plugin: terraform, dir: tf, resource_type: aws_instance.web, target_mapping: {uri: public_ip, name: tags.Name, config: {ssh: {user: user}}, vars: {nic: nics.0.ip}}}`,
			[]string{"web-0 10.0.0.1 ubuntu 192.168.0.1", "web-1 10.0.0.2 ubuntu 192.168.0.2"}, ""},
		{"all instances, state file", `{_plugin: terraform, dir: tf, state: other.tfstate, resource_type: ^aws_instance, target_mapping: {uri: public_ip}}`,
			[]string{"10.0.0.1 10.0.0.1  ", "10.0.0.2 10.0.0.2  ", "10.0.1.1 10.0.1.1  "}, ""},
		{"missing name attribute keeps uri", `{_plugin: terraform, dir: tf, resource_type: aws_instance.db, target_mapping: {uri: public_ip, name: tags.Name}}`,
			[]string{"10.0.1.1 10.0.1.1  "}, ""},
		{"no match", `{_plugin: terraform, dir: tf, resource_type: google_, target_mapping: {uri: public_ip}}`, nil, ""},
		{"bad regex", `{_plugin: terraform, dir: tf, resource_type: "(", target_mapping: {uri: x}}`, nil, "not a valid regular expression"},
		{"no mapping", `{_plugin: terraform, dir: tf, resource_type: x}`, nil, `"target_mapping" is required`},
		{"mapping without uri", `{_plugin: terraform, dir: tf, resource_type: x, target_mapping: {config: {}}}`, nil, "must set uri or name"},
		{"missing state", `{_plugin: terraform, dir: nope, resource_type: x, target_mapping: {uri: x}}`, nil, "cannot read Terraform state file"},
		{"bad state", `{_plugin: terraform, dir: tf, state: bad.tfstate, resource_type: x, target_mapping: {uri: x}}`, nil, "invalid JSON"},
		{"remote backend", `{_plugin: terraform, dir: tf, backend: remote, resource_type: x, target_mapping: {uri: x}}`, nil, `backend "remote" is not supported`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			src := "groups:\n  - name: tf\n    targets:\n      - " + tc.ref + "\n"
			ts, _, err := lookup(t, src, files, Options{Warnf: func(string, ...any) {}}, "tf")
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) || !strings.Contains(err.Error(), `inventory.yaml:4: plugin "terraform"`) {
					t.Fatalf("err %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, tg := range ts {
				nic, _ := tg.Vars["nic"].(string)
				u := ""
				if tc.name == "regex and mapping" {
					u = tg.User
				}
				got = append(got, strings.Join([]string{tg.Name, tg.Host, u, nic}, " "))
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("targets\n got %q\nwant %q", got, tc.want)
			}
		})
	}
}

// pdbServer is a PuppetDB speaking the /pdb/query/v4 API over TLS, for
// the queries the plugin makes: a PQL query for certnames and a
// fact-contents query for the mapped facts.
func pdbServer(t *testing.T, token string) (*httptest.Server, *[]string) {
	t.Helper()
	facts := map[string]map[string]any{
		"web1.example.com": {"networking": map[string]any{"ip": "10.1.0.1", "interfaces": []any{map[string]any{"name": "eth0"}}}, "os": map[string]any{"family": "Debian"}},
		"web2.example.com": {"networking": map[string]any{"ip": "10.1.0.2"}, "os": map[string]any{"family": "RedHat"}},
	}
	var queries []string
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		if r.Header.Get("X-Authentication") != token {
			http.Error(w, "not authorized", http.StatusUnauthorized)
			return
		}
		if len(r.TLS.PeerCertificates) == 0 {
			http.Error(w, "no client certificate", http.StatusForbidden)
			return
		}
		var body struct{ Query any }
		b, _ := io.ReadAll(r.Body)
		if err := json.Unmarshal(b, &body); err != nil {
			http.Error(w, "bad json", http.StatusBadRequest)
			return
		}
		queries = append(queries, r.URL.Path+" "+string(b))
		var rows []any
		switch r.URL.Path {
		case "/pdb/query/v4":
			q, _ := body.Query.(string)
			switch {
			case strings.HasPrefix(q, "inventory[certname]") && strings.Contains(q, "web"):
				rows = []any{map[string]any{"certname": "web1.example.com"}, map[string]any{"certname": "web2.example.com"}, map[string]any{"certname": "web1.example.com"}}
			case strings.HasPrefix(q, "nodes[deactivated]"):
				rows = []any{map[string]any{"deactivated": nil}}
			case strings.HasPrefix(q, "inventory"):
				rows = []any{}
			default:
				http.Error(w, "PQL parse error at "+q, http.StatusBadRequest)
				return
			}
		case "/pdb/query/v4/fact-contents":
			// ["and", ["or", ["=", "certname", c]...], ["or", ["=", "path", p]...]]
			and := body.Query.([]any)
			var names []string
			for _, c := range and[1].([]any)[1:] {
				names = append(names, c.([]any)[2].(string))
			}
			for _, n := range names {
				for _, p := range and[2].([]any)[1:] {
					path := p.([]any)[2].([]any)
					var cur any = facts[n]
					for _, seg := range path {
						switch x := cur.(type) {
						case map[string]any:
							cur = x[seg.(string)]
						case []any:
							cur = x[int(seg.(float64))]
						}
					}
					if cur != nil {
						rows = append(rows, map[string]any{"certname": n, "path": path, "value": cur, "name": path[0], "environment": "production"})
					}
				}
			}
		default:
			http.NotFound(w, r)
			return
		}
		_ = json.NewEncoder(w).Encode(rows)
	}))
	srv.TLS = &tls.Config{ClientAuth: tls.RequireAnyClientCert}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv, &queries
}

func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestPuppetDBPlugin(t *testing.T) {
	srv, queries := pdbServer(t, "rbac-token")
	dir := t.TempDir()
	writePEM(t, filepath.Join(dir, "ca.pem"), "CERTIFICATE", srv.Certificate().Raw)
	key, _ := rsa.GenerateKey(rand.Reader, 2048)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "bolt"}, NotBefore: time.Unix(0, 0), NotAfter: time.Unix(1<<32, 0)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	writePEM(t, filepath.Join(dir, "cert.pem"), "CERTIFICATE", der)
	writePEM(t, filepath.Join(dir, "key.pem"), "RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(key))
	if err := os.WriteFile(filepath.Join(dir, "token"), []byte("rbac-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	conn := map[string]any{"server_urls": []any{"https://127.0.0.1:1", srv.URL}, "cacert": "ca.pem", "cert": "cert.pem", "key": "key.pem", "token": "token"}
	tests := []struct {
		name, ref string
		conn      map[string]any
		want      []string
		err       string
	}{
		{"certnames", `{_plugin: puppetdb, query: "inventory[certname] { facts.os.name = 'web' }"}`, conn,
			[]string{"web1.example.com web1.example.com  ", "web2.example.com web2.example.com  "}, ""},
		{"target mapping", `{_plugin: puppetdb, query: "inventory[certname] { web }", target_mapping: {name: certname, uri: facts.networking.ip, facts: {family: facts.os.family}, vars: {nic: facts.networking.interfaces.0.name}}}`, conn,
			[]string{"web1.example.com 10.1.0.1 Debian eth0", "web2.example.com 10.1.0.2 RedHat "}, ""},
		{"no nodes", `{_plugin: puppetdb, query: "inventory[certname] { false }"}`, conn, nil, ""},
		{"no certname", `{_plugin: puppetdb, query: "nodes[deactivated] {}"}`, conn, nil, `query results have no "certname" field (got deactivated)`},
		{"query error", `{_plugin: puppetdb, query: "bogus"}`, conn, nil, "PuppetDB query failed (400 Bad Request"},
		{"key outside mapping", `{_plugin: puppetdb, query: "x", uri: facts.ip}`, conn, nil, `"uri" must be set under target_mapping`},
		{"bad lookup", `{_plugin: puppetdb, query: "x", target_mapping: {uri: networking.ip}}`, conn, nil, `must be "certname" or start with "facts."`},
		{"no query", `{_plugin: puppetdb}`, conn, nil, `"query" is required`},
		{"not configured", `{_plugin: puppetdb, query: "x"}`, nil, nil, "PuppetDB is not configured"},
		{"wrong token", `{_plugin: puppetdb, query: "inventory[certname] { web }"}`, map[string]any{"server_urls": srv.URL, "cacert": "ca.pem", "cert": "cert.pem", "key": "key.pem"}, nil, "401 Unauthorized"},
		{"no cacert", `{_plugin: puppetdb, query: "x"}`, map[string]any{"server_urls": srv.URL}, nil, "cacert is required"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			src := "groups:\n  - name: pdb\n    targets:\n      - " + tc.ref + "\n"
			ts, _, err := lookup(t, src, nil, Options{ProjectDir: dir, PuppetDB: tc.conn, Warnf: func(string, ...any) {}}, "pdb")
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) || !strings.Contains(err.Error(), `inventory.yaml:4: plugin "puppetdb"`) {
					t.Fatalf("err %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, tg := range ts {
				fam, _ := tg.Facts["family"].(string)
				nic, _ := tg.Vars["nic"].(string)
				got = append(got, strings.Join([]string{tg.Name, tg.Host, fam, nic}, " "))
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("targets\n got %q\nwant %q", got, tc.want)
			}
		})
	}
	// the fact lookup is one fact-contents query for the certnames found
	var fc []string
	for _, q := range *queries {
		if strings.HasPrefix(q, "/pdb/query/v4/fact-contents ") {
			fc = append(fc, q)
		}
	}
	if len(fc) != 1 || !strings.Contains(fc[0], `["=","certname","web1.example.com"]`) || !strings.Contains(fc[0], `["=","path",["networking","interfaces",0,"name"]]`) {
		t.Errorf("fact-contents queries %q", fc)
	}
}
