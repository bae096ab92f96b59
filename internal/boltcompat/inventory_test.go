package boltcompat

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/muster-run/muster"
	"github.com/muster-run/muster/internal/engine"
	"github.com/muster-run/muster/internal/inventory"
	"github.com/muster-run/muster/internal/project"
)

// invCase is testdata/inventory/<case>/expect.json.
type invCase struct {
	Doc string `json:"doc"`
	// Inventory is the inventory file, relative to the case (default
	// inventory.yaml in the project).
	Inventory string            `json:"inventory"`
	Env       map[string]string `json:"env"`
	// Setup names a preparation in invSetups.
	Setup string `json:"setup"`
	// Prompts answers the prompt plugin by message; PromptCounts is how
	// often each message may be asked.
	Prompts      map[string]string `json:"prompts"`
	PromptCounts map[string]int    `json:"prompt_counts"`
	// LoadError: the inventory must not load, with these in the message
	// and these details.
	LoadError        []string       `json:"load_error"`
	LoadErrorDetails map[string]any `json:"load_error_details"`
	Warnings         []string       `json:"warnings"`
	Lookups          []invLookup    `json:"lookups"`
}

type invLookup struct {
	Name    string   `json:"name"`
	Targets []any    `json:"targets"`
	Error   []string `json:"error"`
	// Details are the error's details (file is compared by base name).
	Details map[string]any `json:"details"`
	// Sensitive lists, per target, the places whose values came from a
	// secret-bearing plugin.
	Sensitive map[string][][]string `json:"sensitive"`
	// TaskRuns is how many times the task plugin has run after this
	// lookup (nil: not checked).
	TaskRuns *int64 `json:"task_runs"`
}

// invSetups prepare a copied case directory.
var invSetups = map[string]func(t *testing.T, dir string){
	"pkcs7":    setupPKCS7,
	"puppetdb": setupPuppetDB,
}

// TestInventory runs every case under testdata/inventory: the inventory
// is loaded as the CLI loads it (internal/project, the project file's
// plugin settings, the task plugin running tasks on localhost through
// the engine), each lookup resolves the name as -t does, and the targets
// (name, host, port, user, transport, config, vars, facts, features,
// groups), errors, warnings and sensitive places are compared.
func TestInventory(t *testing.T) {
	for _, name := range caseNames(t, "inventory") {
		t.Run(name, func(t *testing.T) {
			dir := copyCase(t, filepath.Join("inventory", name))
			var tc invCase
			readJSON(t, filepath.Join(dir, "expect.json"), &tc)
			for k, v := range tc.Env {
				t.Setenv(k, v)
			}
			if tc.Setup != "" {
				setup, ok := invSetups[tc.Setup]
				if !ok {
					t.Fatalf("unknown setup %q", tc.Setup)
				}
				setup(t, dir)
			}
			var mu sync.Mutex
			var warnings []string
			asked := map[string]int{}
			var taskRuns atomic.Int64
			o := project.Options{Dir: dir}
			if tc.Inventory != "" {
				o.InventoryFile = filepath.Join(dir, tc.Inventory)
			}
			o.Inventory.Warnf = func(f string, a ...any) {
				mu.Lock()
				defer mu.Unlock()
				warnings = append(warnings, fmt.Sprintf(f, a...))
			}
			o.Inventory.Prompt = func(msg string) (string, error) {
				mu.Lock()
				defer mu.Unlock()
				asked[msg]++
				if v, ok := tc.Prompts[msg]; ok {
					return v, nil
				}
				return "", inventory.ErrNotInteractive
			}
			o.Inventory.RunTask = func(ctx context.Context, name string, params map[string]any) (map[string]any, error) {
				taskRuns.Add(1)
				idx, err := o.Tasks()
				if err != nil {
					return nil, err
				}
				return engine.LocalTask(ctx, localRunner(t), idx, name, params, nil)
			}
			inv, _, err := o.LoadInventory()
			if tc.LoadError != nil {
				if err == nil {
					t.Fatalf("the inventory loaded; want an error with %q", tc.LoadError)
				}
				containsAll(t, "load error", err.Error(), tc.LoadError)
				checkDetails(t, err, tc.LoadErrorDetails)
				return
			}
			if err != nil {
				t.Fatalf("load: %v", err)
			}
			for _, l := range tc.Lookups {
				ts, ok, err := inv.Lookup(l.Name)
				if l.Error != nil {
					if err == nil {
						t.Fatalf("lookup %s: no error, want %q", l.Name, l.Error)
					}
					containsAll(t, "lookup "+l.Name+" error", err.Error(), l.Error)
					checkDetails(t, err, l.Details)
					continue
				}
				if err != nil || !ok {
					t.Fatalf("lookup %s: found %v, %v", l.Name, ok, err)
				}
				got := make([]any, len(ts))
				for i, tg := range ts {
					got[i] = targetView(tg)
				}
				checkSubset(t, "lookup "+l.Name, l.Targets, got)
				for name, want := range l.Sensitive {
					gotPlaces := inv.Sensitive(name)
					sortPlaces(gotPlaces)
					sortPlaces(want)
					checkSubset(t, "sensitive places of "+name, want, gotPlaces)
				}
				if l.TaskRuns != nil && taskRuns.Load() != *l.TaskRuns {
					t.Errorf("after lookup %s the task plugin ran %d times, want %d", l.Name, taskRuns.Load(), *l.TaskRuns)
				}
			}
			containsAll(t, "warnings", strings.Join(warnings, "\n"), tc.Warnings)
			for msg, n := range tc.PromptCounts {
				if asked[msg] != n {
					t.Errorf("prompt %q asked %d times, want %d", msg, asked[msg], n)
				}
			}
		})
	}
}

// targetView is a target as a user sees it in `inventory show --detail`,
// with the connection endpoint the merge rules chose.
func targetView(t *muster.Target) map[string]any {
	return map[string]any{
		"name": t.Name, "uri": t.URI, "alias": t.Alias, "transport": t.Transport, "host": t.Host, "port": t.Port,
		"user": t.User, "config": t.Config, "vars": t.Vars, "facts": t.Facts, "features": t.Features, "groups": t.Groups,
	}
}

func sortPlaces(p [][]string) {
	sort.Slice(p, func(i, j int) bool { return strings.Join(p[i], ".") < strings.Join(p[j], ".") })
}

// checkDetails compares an error's details (muster's error JSON) with
// want; a "file" detail is compared by its base name.
func checkDetails(t *testing.T, err error, want map[string]any) {
	t.Helper()
	if want == nil {
		return
	}
	me := muster.AsError(err, muster.KindInvalid)
	got := map[string]any{}
	for k, v := range me.Details {
		got[k] = v
	}
	if f, ok := got["file"].(string); ok {
		got["file"] = filepath.Base(f)
	}
	checkSubset(t, "error details", want, got)
}

// setupPKCS7 makes the project's key pair with OpenSSL, where and how
// `bolt secret createkeys` makes it, and replaces every "@ENC:text@" of
// inventory.yaml with text encrypted by OpenSSL as `bolt secret encrypt`
// does: a PKCS #7 enveloped-data message (AES-256-CBC) in DER, in base64,
// inside ENC[PKCS7,...].
func setupPKCS7(t *testing.T, dir string) {
	keys := filepath.Join(dir, "keys")
	opensslKeys(t, keys)
	invPath := filepath.Join(dir, "inventory.yaml")
	b, err := os.ReadFile(invPath)
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`@ENC:([^@]*)@`)
	b = re.ReplaceAllFunc(b, func(m []byte) []byte {
		plain := re.FindSubmatch(m)[1]
		return []byte(opensslEncrypt(t, filepath.Join(keys, "public_key.pkcs7.pem"), plain))
	})
	if err := os.WriteFile(invPath, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// needOpenSSL skips without the openssl command.
func needOpenSSL(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("no openssl: the pkcs7 interoperability cases need it")
	}
}

// opensslKeys writes keys/private_key.pkcs7.pem and public_key.pkcs7.pem
// as hiera-eyaml and Bolt make them (an RSA key and a self-signed
// certificate), with OpenSSL.
func opensslKeys(t *testing.T, keys string) {
	t.Helper()
	needOpenSSL(t)
	if err := os.MkdirAll(keys, 0o700); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("openssl", "req", "-x509", "-nodes", "-days", "36500", "-newkey", "rsa:2048",
		"-keyout", filepath.Join(keys, "private_key.pkcs7.pem"), "-out", filepath.Join(keys, "public_key.pkcs7.pem"),
		"-subj", "/CN=boltcompat", "-batch").CombinedOutput()
	if err != nil {
		t.Fatalf("openssl req: %v\n%s", err, out)
	}
}

// opensslEncrypt encrypts plain for the certificate as Bolt's pkcs7
// plugin does, and returns ENC[PKCS7,<base64 DER>].
func opensslEncrypt(t *testing.T, cert string, plain []byte) string {
	t.Helper()
	cmd := exec.Command("openssl", "smime", "-encrypt", "-aes-256-cbc", "-binary", "-outform", "DER", cert)
	cmd.Stdin = strings.NewReader(string(plain))
	der, err := cmd.Output()
	if err != nil {
		t.Fatalf("openssl smime -encrypt: %v", err)
	}
	return "ENC[PKCS7," + base64.StdEncoding.EncodeToString(der) + "]"
}

// opensslDecrypt decrypts an ENC[PKCS7,...] value with OpenSSL and the
// key pair in keys.
func opensslDecrypt(t *testing.T, keys, value string) string {
	t.Helper()
	b64, ok := strings.CutPrefix(strings.TrimSpace(value), "ENC[PKCS7,")
	if !ok || !strings.HasSuffix(b64, "]") {
		t.Fatalf("not an encrypted value: %q", value)
	}
	der, err := base64.StdEncoding.DecodeString(strings.TrimSuffix(b64, "]"))
	if err != nil {
		t.Fatalf("base64 of %q: %v", value, err)
	}
	cmd := exec.Command("openssl", "smime", "-decrypt", "-inform", "DER",
		"-recip", filepath.Join(keys, "public_key.pkcs7.pem"), "-inkey", filepath.Join(keys, "private_key.pkcs7.pem"))
	cmd.Stdin = strings.NewReader(string(der))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("openssl smime -decrypt: %v\n%s", err, out)
	}
	return string(out)
}

// setupPuppetDB starts an HTTPS server that answers PuppetDB's query API
// (POST /pdb/query/v4 with a PQL inventory query, POST
// /pdb/query/v4/fact-contents with an AST query) from the case's
// facts.json, and requires a client certificate signed by its CA. It
// writes the CA and a client certificate into certs/ and its URL into
// bolt-project.yaml.
func setupPuppetDB(t *testing.T, dir string) {
	var facts map[string]map[string]any
	b, err := os.ReadFile(filepath.Join(dir, "facts.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &facts); err != nil {
		t.Fatal(err)
	}
	ca, caKey := newCert(t, "boltcompat CA", nil, nil, true)
	srvCert, srvKey := newCert(t, "127.0.0.1", ca, caKey, false)
	cliCert, cliKey := newCert(t, "bolt-client", ca, caKey, false)
	certs := filepath.Join(dir, "certs")
	must(t, os.MkdirAll(certs, 0o700))
	writePEM(t, filepath.Join(certs, "ca.pem"), "CERTIFICATE", ca.Raw)
	writePEM(t, filepath.Join(certs, "client.pem"), "CERTIFICATE", cliCert.Raw)
	writePEM(t, filepath.Join(certs, "client-key.pem"), "RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(cliKey))

	family := regexp.MustCompile(`^inventory\[certname\] \{ facts\.os\.family = '([^']*)' \}$`)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body struct{ Query any }
		raw, _ := io.ReadAll(r.Body)
		if r.Method != http.MethodPost || json.Unmarshal(raw, &body) != nil {
			http.Error(w, "want a POST of {\"query\": ...}", http.StatusBadRequest)
			return
		}
		rows := []any{}
		switch r.URL.Path {
		case "/pdb/query/v4":
			q, _ := body.Query.(string)
			m := family.FindStringSubmatch(q)
			if m == nil {
				http.Error(w, "PQL this server does not know: "+q, http.StatusBadRequest)
				return
			}
			var names []string
			for n, f := range facts {
				if os, _ := f["os"].(map[string]any); os["family"] == m[1] {
					names = append(names, n)
				}
			}
			sort.Strings(names)
			for _, n := range names {
				rows = append(rows, map[string]any{"certname": n})
			}
		case "/pdb/query/v4/fact-contents":
			// ["and", ["or", ["=", "certname", C]...], ["or", ["=", "path", P]...]]
			and, ok := body.Query.([]any)
			if !ok || len(and) != 3 {
				http.Error(w, "want [and, [or certnames], [or paths]]", http.StatusBadRequest)
				return
			}
			for _, c := range and[1].([]any)[1:] {
				name := c.([]any)[2].(string)
				for _, p := range and[2].([]any)[1:] {
					path := p.([]any)[2].([]any)
					var cur any = facts[name]
					for _, seg := range path {
						switch x := cur.(type) {
						case map[string]any:
							cur = x[seg.(string)]
						case []any:
							cur = x[int(seg.(float64))]
						}
					}
					if cur != nil {
						rows = append(rows, map[string]any{"certname": name, "path": path, "value": cur, "name": path[0], "environment": "production"})
					}
				}
			}
		default:
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(rows)
	}))
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	srv.TLS = &tls.Config{ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool, MinVersion: tls.VersionTLS12,
		Certificates: []tls.Certificate{{Certificate: [][]byte{srvCert.Raw}, PrivateKey: srvKey}}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	replaceInFile(t, filepath.Join(dir, "bolt-project.yaml"), "@PDB_URL@", srv.URL)
}

// newCert makes an RSA key and a certificate for cn, signed by parent
// (self-signed when nil), for 127.0.0.1.
func newCert(t *testing.T, cn string, parent *x509.Certificate, parentKey *rsa.PrivateKey, isCA bool) (*x509.Certificate, *rsa.PrivateKey) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	must(t, err)
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}
	if isCA {
		tmpl.IsCA, tmpl.BasicConstraintsValid = true, true
		tmpl.KeyUsage |= x509.KeyUsageCertSign
		tmpl.ExtKeyUsage = nil
	} else {
		tmpl.IPAddresses = parseIPs("127.0.0.1")
	}
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	must(t, err)
	c, err := x509.ParseCertificate(der)
	must(t, err)
	return c, key
}

func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	must(t, os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600))
}

func replaceInFile(t *testing.T, path, old, new string) {
	t.Helper()
	b, err := os.ReadFile(path)
	must(t, err)
	if !strings.Contains(string(b), old) {
		t.Fatalf("%s has no %q", path, old)
	}
	must(t, os.WriteFile(path, []byte(strings.ReplaceAll(string(b), old, new)), 0o644))
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func parseIPs(s ...string) []net.IP {
	var out []net.IP
	for _, a := range s {
		out = append(out, net.ParseIP(a))
	}
	return out
}
