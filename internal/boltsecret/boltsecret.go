// Package boltsecret reads and writes Bolt's pkcs7 secrets: the key pair
// that `bolt secret createkeys` makes (an RSA private key and a self-signed
// certificate holding its public key, as PEM files in the project's keys/
// directory) and values of the form ENC[PKCS7,<base64 DER>], a PKCS #7
// enveloped-data message whose content is encrypted with AES-256-CBC for
// that certificate. The format is hiera-eyaml's, so values move freely
// between muster, Bolt, hiera-eyaml and OpenSSL.
package boltsecret

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/smallstep/pkcs7"
)

// Default key files, relative to the project, as Bolt names them.
const (
	DefaultPrivateKey = "keys/private_key.pkcs7.pem"
	DefaultPublicKey  = "keys/public_key.pkcs7.pem"
	DefaultKeySize    = 2048
)

// Config is the pkcs7 plugin's configuration (Bolt's plugins.pkcs7 keys
// private-key, public-key and keysize), with paths made absolute.
type Config struct {
	PrivateKey string
	PublicKey  string
	KeySize    int
}

// NewConfig reads the pkcs7 plugin's settings from a project's plugin
// configuration (nil for the defaults); relative paths are taken from dir.
func NewConfig(dir string, settings map[string]any) (Config, error) {
	c := Config{PrivateKey: DefaultPrivateKey, PublicKey: DefaultPublicKey, KeySize: DefaultKeySize}
	keys := make([]string, 0, len(settings))
	for k := range settings {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := settings[k]
		switch k {
		case "private-key", "public-key":
			s, ok := v.(string)
			if !ok || s == "" {
				return c, fmt.Errorf("pkcs7 plugin config: %s must be a non-empty string", k)
			}
			if k == "private-key" {
				c.PrivateKey = s
			} else {
				c.PublicKey = s
			}
		case "keysize":
			n, ok := v.(int)
			if !ok || n < 2048 || n > 16384 {
				return c, fmt.Errorf("pkcs7 plugin config: keysize must be an integer from 2048 to 16384")
			}
			c.KeySize = n
		default:
			return c, fmt.Errorf("pkcs7 plugin config: unknown key %q (known: keysize, private-key, public-key)", k)
		}
	}
	if !filepath.IsAbs(c.PrivateKey) {
		c.PrivateKey = filepath.Join(dir, c.PrivateKey)
	}
	if !filepath.IsAbs(c.PublicKey) {
		c.PublicKey = filepath.Join(dir, c.PublicKey)
	}
	return c, nil
}

// CreateKeys writes a new key pair as Bolt does: an RSA key of c.KeySize
// bits (PKCS #1 PEM, mode 0600) and a self-signed certificate with an
// empty subject, valid for 50 years. Existing files are kept unless force.
func CreateKeys(c Config, force bool) error {
	if !force {
		for _, p := range []string{c.PrivateKey, c.PublicKey} {
			if _, err := os.Stat(p); err == nil {
				return fmt.Errorf("%s already exists: pass --force to overwrite the key pair", p)
			}
		}
	}
	key, err := rsa.GenerateKey(rand.Reader, c.KeySize)
	if err != nil {
		return err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:       big.NewInt(1),
		Subject:            pkix.Name{},
		NotBefore:          now,
		NotAfter:           now.Add(50 * 365 * 24 * time.Hour),
		SignatureAlgorithm: x509.SHA512WithRSA,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return fmt.Errorf("create certificate: %w", err)
	}
	for _, p := range []string{c.PrivateKey, c.PublicKey} {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
	}
	priv := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
	if err := writeFile(c.PrivateKey, priv, 0o600); err != nil {
		return err
	}
	return writeFile(c.PublicKey, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
}

// writeFile replaces path with data, creating it with mode (and setting
// mode on an existing file before writing, so a key is never readable).
func writeFile(path string, data []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// LoadCertificate reads the public key: a PEM certificate.
func LoadCertificate(path string) (*x509.Certificate, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read public key: %w", err)
	}
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("public key %s: not a PEM certificate", path)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("public key %s: %v", path, err)
	}
	if _, ok := cert.PublicKey.(*rsa.PublicKey); !ok {
		return nil, fmt.Errorf("public key %s: the certificate's key is not RSA", path)
	}
	return cert, nil
}

// LoadPrivateKey reads the private key: an unencrypted RSA key in PKCS #1
// ("RSA PRIVATE KEY", as Bolt writes it) or PKCS #8 ("PRIVATE KEY") PEM.
func LoadPrivateKey(path string) (*rsa.PrivateKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read private key: %w", err)
	}
	block, _ := pem.Decode(b)
	if block == nil {
		return nil, fmt.Errorf("private key %s: not PEM", path)
	}
	switch block.Type {
	case "RSA PRIVATE KEY":
		k, err := x509.ParsePKCS1PrivateKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("private key %s: %v", path, err)
		}
		return k, nil
	case "PRIVATE KEY":
		k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("private key %s: %v", path, err)
		}
		rk, ok := k.(*rsa.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("private key %s: not an RSA key", path)
		}
		return rk, nil
	}
	return nil, fmt.Errorf("private key %s: unsupported PEM block %q (want an unencrypted RSA key)", path, block.Type)
}

// Prefix and Suffix frame an encrypted value.
const (
	Prefix = "ENC[PKCS7,"
	Suffix = "]"
)

// algMu guards the pkcs7 package's global choice of content cipher.
var algMu sync.Mutex

// Encrypt encrypts plaintext for cert and returns ENC[PKCS7,<base64>].
func Encrypt(cert *x509.Certificate, plaintext []byte) (string, error) {
	algMu.Lock()
	pkcs7.ContentEncryptionAlgorithm = pkcs7.EncryptionAlgorithmAES256CBC
	der, err := pkcs7.Encrypt(plaintext, []*x509.Certificate{cert})
	algMu.Unlock()
	if err != nil {
		return "", fmt.Errorf("encrypt: %v", err)
	}
	return Prefix + base64.StdEncoding.EncodeToString(der) + Suffix, nil
}

// ErrFormat is returned for a value that is not ENC[PKCS7,<base64>].
var ErrFormat = errors.New("not an encrypted value: expected ENC[PKCS7,<base64>]")

// Parse returns the DER message inside ENC[PKCS7,...]. Whitespace around
// the value and inside the base64 (as in a folded YAML block) is ignored.
func Parse(value string) ([]byte, error) {
	s := strings.TrimSpace(value)
	if !strings.HasPrefix(s, Prefix) || !strings.HasSuffix(s, Suffix) {
		return nil, ErrFormat
	}
	b64 := strings.Map(func(r rune) rune {
		switch r {
		case ' ', '\t', '\n', '\r':
			return -1
		}
		return r
	}, s[len(Prefix):len(s)-len(Suffix)])
	if b64 == "" {
		return nil, fmt.Errorf("%w: the base64 part is empty", ErrFormat)
	}
	der, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return nil, fmt.Errorf("%w: invalid base64: %v", ErrFormat, err)
	}
	return der, nil
}

// Decrypt decrypts an ENC[PKCS7,...] value with the key pair.
func Decrypt(cert *x509.Certificate, key *rsa.PrivateKey, value string) ([]byte, error) {
	der, err := Parse(value)
	if err != nil {
		return nil, err
	}
	return DecryptDER(cert, key, der)
}

// DecryptDER decrypts a DER (or BER) PKCS #7 enveloped-data message.
func DecryptDER(cert *x509.Certificate, key *rsa.PrivateKey, der []byte) (out []byte, err error) {
	defer func() {
		// The ASN.1 walk of a hostile message must never crash the caller.
		if r := recover(); r != nil {
			out, err = nil, fmt.Errorf("decrypt: malformed PKCS7 message")
		}
	}()
	p7, err := pkcs7.Parse(der)
	if err != nil {
		return nil, fmt.Errorf("decrypt: not a PKCS7 message: %v", err)
	}
	out, err = p7.Decrypt(cert, key)
	if err != nil {
		return nil, fmt.Errorf("decrypt: %v (was the value encrypted for this key pair?)", err)
	}
	return out, nil
}

// Keys is a loaded key pair.
type Keys struct {
	Cert *x509.Certificate
	Key  *rsa.PrivateKey // nil when only the public key was loaded
}

// LoadKeys reads the public key, and the private key when private is true.
func LoadKeys(c Config, private bool) (*Keys, error) {
	cert, err := LoadCertificate(c.PublicKey)
	if err != nil {
		return nil, err
	}
	k := &Keys{Cert: cert}
	if private {
		if k.Key, err = LoadPrivateKey(c.PrivateKey); err != nil {
			return nil, err
		}
		if !k.Key.PublicKey.Equal(cert.PublicKey) {
			return nil, fmt.Errorf("private key %s does not match public key %s", c.PrivateKey, c.PublicKey)
		}
	}
	return k, nil
}
