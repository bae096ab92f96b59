package pki

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
)

// PEM block types of the files this package writes.
const (
	pemCert = "CERTIFICATE"
	pemKey  = "PRIVATE KEY" // PKCS #8
	pemCSR  = "CERTIFICATE REQUEST"
)

// ErrKeyFileMode marks a private key file that group or others may read.
var ErrKeyFileMode = errors.New("private key file is readable by others")

// NewKey makes an agent's private key: ed25519.
func NewKey() (crypto.Signer, error) {
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("making an ed25519 key: %w", err)
	}
	return key, nil
}

// SaveKey writes key to path as PKCS #8 PEM with mode 0600, replacing the
// file atomically (a new file renamed over the old one, so a crash leaves
// the old key or the new one, never half of one). The directory is made
// (mode 0700) if it is missing.
func SaveKey(path string, key crypto.Signer) error {
	if err := checkKeyType(key.Public()); err != nil {
		return fmt.Errorf("saving key %s: %w", path, err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return fmt.Errorf("saving key %s: %w", path, err)
	}
	data := pemEncode(pemKey, der)
	if err := writeFileAtomic(path, data, 0o600); err != nil {
		return fmt.Errorf("saving key %s: %w", path, err)
	}
	return nil
}

// LoadKey reads a key written by [SaveKey]. Like ssh, it refuses a file
// that group or others can read (the error wraps [ErrKeyFileMode] and says
// how to fix it), and it accepts only ed25519 and ECDSA P-256 keys.
func LoadKey(path string) (crypto.Signer, error) {
	if err := checkKeyFileMode(path); err != nil {
		return nil, err
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading key: %w", err)
	}
	block, rest := pem.Decode(data)
	if block == nil || block.Type != pemKey {
		return nil, fmt.Errorf("key %s: not a PEM %q block", path, pemKey)
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		return nil, fmt.Errorf("key %s: more than one PEM block", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("key %s: %w", path, err)
	}
	signer, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("key %s: a %T cannot sign", path, k)
	}
	if err := checkKeyType(signer.Public()); err != nil {
		return nil, fmt.Errorf("key %s: %w", path, err)
	}
	return signer, nil
}

// checkKeyFileMode refuses a key file that group or others may read or
// write. Windows has no such mode bits, so there it only checks that the
// file exists.
func checkKeyFileMode(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("reading key: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("key %s is not a regular file", path)
	}
	if runtime.GOOS == "windows" {
		return nil
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return fmt.Errorf("%w: %s has mode %#o, so others may read this private key: chmod 600 %s",
			ErrKeyFileMode, path, perm, path)
	}
	return nil
}

// checkKeyType accepts the public keys of agents and of the CA: ed25519
// and ECDSA on P-256. RSA is refused at every size.
func checkKeyType(pub crypto.PublicKey) error {
	switch k := pub.(type) {
	case ed25519.PublicKey:
		return nil
	case *ecdsa.PublicKey:
		if k.Curve == elliptic.P256() {
			return nil
		}
		return fmt.Errorf("ECDSA key on %s: only P-256 is accepted (or ed25519)", k.Curve.Params().Name)
	case *rsa.PublicKey:
		return fmt.Errorf("RSA key (%d bits): muster accepts ed25519 and ECDSA P-256 keys only", k.N.BitLen())
	default:
		return fmt.Errorf("%T key: muster accepts ed25519 and ECDSA P-256 keys only", pub)
	}
}

// NewCSR makes a certificate signing request for certname, signed by key:
// the certname is the subject's common name and the one DNS name. It
// returns the DER bytes.
func NewCSR(key crypto.Signer, certname string) ([]byte, error) {
	if err := ValidCertname(certname); err != nil {
		return nil, err
	}
	if err := checkKeyType(key.Public()); err != nil {
		return nil, fmt.Errorf("CSR for %s: %w", certname, err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject:  pkix.Name{CommonName: certname},
		DNSNames: []string{certname},
	}, key)
	if err != nil {
		return nil, fmt.Errorf("CSR for %s: %w", certname, err)
	}
	return der, nil
}

// ParseCSR parses a CSR (DER, or PEM "CERTIFICATE REQUEST"), checks its
// signature and its key type, and returns it with the certname it asks
// for. The certname is the subject's common name; DNS names, if any, must
// be that name alone, and the CSR may ask for no other kind of name.
// The server calls it on receipt, before it looks at the enrollment
// policy; [CA.Sign] checks all of this again.
func ParseCSR(data []byte) (*x509.CertificateRequest, string, error) {
	der := data
	if block, _ := pem.Decode(data); block != nil {
		if block.Type != pemCSR {
			return nil, "", fmt.Errorf("CSR: a PEM %q block, not %q", block.Type, pemCSR)
		}
		der = block.Bytes
	}
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		return nil, "", fmt.Errorf("CSR: %w", err)
	}
	name, err := checkCSR(csr)
	if err != nil {
		return nil, "", err
	}
	return csr, name, nil
}

// checkCSR checks a parsed CSR and returns its certname.
func checkCSR(csr *x509.CertificateRequest) (string, error) {
	name := csr.Subject.CommonName
	if err := ValidCertname(name); err != nil {
		return "", fmt.Errorf("CSR: %w", err)
	}
	if err := csr.CheckSignature(); err != nil {
		return "", fmt.Errorf("CSR for %s: bad signature: %w", name, err)
	}
	if err := checkKeyType(csr.PublicKey); err != nil {
		return "", fmt.Errorf("CSR for %s: %w", name, err)
	}
	if len(csr.DNSNames) > 0 && !slices.Equal(csr.DNSNames, []string{name}) {
		return "", fmt.Errorf("CSR for %s: it also asks for DNS names %q; an agent certificate carries its certname only", name, csr.DNSNames)
	}
	if len(csr.IPAddresses) > 0 || len(csr.EmailAddresses) > 0 || len(csr.URIs) > 0 {
		return "", fmt.Errorf("CSR for %s: it asks for IP, email or URI names; an agent certificate carries its certname only", name)
	}
	return name, nil
}

// EncodeCSRPEM wraps a CSR's DER bytes in PEM.
func EncodeCSRPEM(der []byte) []byte {
	return pemEncode(pemCSR, der)
}

// EncodeCertPEM wraps certificates' DER bytes in PEM, one block each.
func EncodeCertPEM(ders ...[]byte) []byte {
	var out []byte
	for _, der := range ders {
		out = append(out, pemEncode(pemCert, der)...)
	}
	return out
}

// ParseCertPEM parses a single PEM certificate (what [SaveCert] writes
// and the server sends) and returns it; its DER is cert.Raw.
func ParseCertPEM(data []byte) (*x509.Certificate, error) {
	block, rest := pem.Decode(data)
	if block == nil || block.Type != pemCert {
		return nil, fmt.Errorf("not a PEM %q block", pemCert)
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		return nil, errors.New("more than one PEM block")
	}
	return x509.ParseCertificate(block.Bytes)
}

// SaveCert writes a certificate as PEM with mode 0644, atomically.
func SaveCert(path string, der []byte) error {
	if err := writeFileAtomic(path, EncodeCertPEM(der), 0o644); err != nil {
		return fmt.Errorf("saving certificate %s: %w", path, err)
	}
	return nil
}

// LoadCert reads a certificate written by [SaveCert].
func LoadCert(path string) (*x509.Certificate, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading certificate: %w", err)
	}
	cert, err := ParseCertPEM(data)
	if err != nil {
		return nil, fmt.Errorf("certificate %s: %w", path, err)
	}
	return cert, nil
}

// TLSCertificate pairs a certificate with its private key for a
// tls.Config, checking that they belong together.
func TLSCertificate(certDER []byte, key crypto.Signer) (tls.Certificate, error) {
	cert, err := x509.ParseCertificate(certDER)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("certificate: %w", err)
	}
	if !publicKeysEqual(cert.PublicKey, key.Public()) {
		return tls.Certificate{}, fmt.Errorf("certificate for %q does not belong to this private key", cert.Subject.CommonName)
	}
	return tls.Certificate{Certificate: [][]byte{certDER}, PrivateKey: key, Leaf: cert}, nil
}

// publicKeysEqual compares two public keys of the accepted types.
func publicKeysEqual(a, b crypto.PublicKey) bool {
	k, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && k.Equal(b)
}

// pemEncode wraps DER bytes in one PEM block.
func pemEncode(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

// writeFileAtomic writes data to a temporary file beside path with mode
// perm, syncs it and renames it over path.
func writeFileAtomic(path string, data []byte, perm fs.FileMode) error {
	tmp, err := writeTemp(path, data, perm)
	if err != nil {
		return err
	}
	defer os.Remove(tmp) // a no-op once renamed
	return os.Rename(tmp, path)
}

// writeFileExcl is writeFileAtomic that fails, wrapping fs.ErrExist, if
// path exists: the complete file is linked into place, never overwriting.
func writeFileExcl(path string, data []byte, perm fs.FileMode) error {
	tmp, err := writeTemp(path, data, perm)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	return os.Link(tmp, path)
}

// writeTemp writes data to a new temporary file in path's directory
// (made with mode 0700 if missing) with mode perm, synced, and returns
// its name.
func writeTemp(path string, data []byte, perm fs.FileMode) (string, error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return "", err
	}
	tmp := f.Name()
	err = f.Chmod(perm)
	if err == nil {
		_, err = f.Write(data)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		return "", err
	}
	return tmp, nil
}
