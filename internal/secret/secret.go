// Package secret seals the secrets a job carries (sudo passwords,
// sensitive task parameters) so the queue's database never holds them in
// plain text. A Box is AES-256-GCM under a 32-byte key that the server
// keeps outside the database (a mode-0600 file, or an environment
// variable); every server sharing a database needs the same key.
//
// A sealed value is "v1:" + base64url(nonce || ciphertext), the plaintext
// being the secrets' JSON. The job's id is not bound in (the spec is sealed
// before the job exists), so a sealed value copied between jobs opens; the
// database's write access is the boundary, not the box.
package secret

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// KeySize is the key length in bytes.
const KeySize = 32

const prefix = "v1:"

// Box seals and opens secrets.
type Box struct{ aead cipher.AEAD }

// New returns a Box for a 32-byte key.
func New(key []byte) (*Box, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("secret key: want %d bytes, got %d", KeySize, len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &Box{aead: aead}, nil
}

// NewKey returns a random key, hex-encoded as a key file holds it.
func NewKey() (string, error) {
	k := make([]byte, KeySize)
	if _, err := rand.Read(k); err != nil {
		return "", err
	}
	return hex.EncodeToString(k), nil
}

// ParseKey decodes a key file's content: 64 hex digits, surrounding
// whitespace ignored. The error never echoes the content.
func ParseKey(text string) ([]byte, error) {
	k, err := hex.DecodeString(strings.TrimSpace(text))
	if err != nil || len(k) != KeySize {
		return nil, fmt.Errorf("a secret key is %d hex digits (%d bytes); this one is not", 2*KeySize, KeySize)
	}
	return k, nil
}

// Seal encrypts secrets. An empty map seals to "".
func (b *Box) Seal(secrets map[string]string) (string, error) {
	if len(secrets) == 0 {
		return "", nil
	}
	plain, err := json.Marshal(secrets)
	if err != nil {
		return "", err
	}
	nonce := make([]byte, b.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return "", err
	}
	sealed := b.aead.Seal(nonce, nonce, plain, []byte(prefix))
	return prefix + base64.RawURLEncoding.EncodeToString(sealed), nil
}

// ErrOpen means a sealed value was not made by this key (or was altered).
var ErrOpen = errors.New("cannot open sealed secrets: the server's secret key differs from the one that sealed them, or they were altered")

// Open decrypts what Seal made. "" opens to nil.
func (b *Box) Open(sealed string) (map[string]string, error) {
	if sealed == "" {
		return nil, nil
	}
	body, ok := strings.CutPrefix(sealed, prefix)
	if !ok {
		return nil, ErrOpen
	}
	raw, err := base64.RawURLEncoding.DecodeString(body)
	if err != nil || len(raw) < b.aead.NonceSize() {
		return nil, ErrOpen
	}
	n := b.aead.NonceSize()
	plain, err := b.aead.Open(nil, raw[:n], raw[n:], []byte(prefix))
	if err != nil {
		return nil, ErrOpen
	}
	var out map[string]string
	if err := json.Unmarshal(plain, &out); err != nil {
		return nil, ErrOpen
	}
	return out, nil
}
