package boltsecret

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"math/big"
	"testing"
	"time"
)

// FuzzDecrypt feeds arbitrary ENC[PKCS7,...] values to the parser and the
// PKCS7 decoder: they may fail, never panic, and a value that decrypts
// must have been well framed.
func FuzzDecrypt(f *testing.F) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		f.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{}, NotBefore: time.Unix(0, 0), NotAfter: time.Unix(1<<31, 0)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		f.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		f.Fatal(err)
	}
	enc, err := Encrypt(cert, []byte("seed"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(enc)
	f.Add("ENC[PKCS7,]")
	f.Add("ENC[PKCS7,MIIBeQYJKoZIhvcNAQcDoIIBajCCAWYCAQAx]")
	f.Add("ENC[PKCS7," + base64.StdEncoding.EncodeToString([]byte{0x30, 0x80, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x03, 0x00, 0x00}) + "]")
	f.Add("plain text")
	f.Fuzz(func(t *testing.T, v string) {
		if _, err := Decrypt(cert, key, v); err == nil {
			if _, perr := Parse(v); perr != nil {
				t.Fatalf("decrypted a value that does not parse: %v", perr)
			}
		}
	})
}
