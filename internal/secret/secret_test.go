package secret

import (
	"strings"
	"testing"
)

func newBox(t *testing.T) *Box {
	t.Helper()
	hexKey, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	key, err := ParseKey(hexKey + "\n")
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(key)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestSealOpen(t *testing.T) {
	b := newBox(t)
	in := map[string]string{"sudo_password": "hunter2", "param:token": "s3cr3t"}
	sealed, err := b.Seal(in)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range in {
		if strings.Contains(sealed, v) {
			t.Fatalf("sealed value %q shows a secret", sealed)
		}
	}
	again, _ := b.Seal(in)
	if again == sealed {
		t.Fatal("two seals of the same secrets are equal: the nonce is not random")
	}
	out, err := b.Open(sealed)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 2 || out["sudo_password"] != "hunter2" || out["param:token"] != "s3cr3t" {
		t.Fatalf("opened %v", out)
	}
	if s, _ := b.Seal(nil); s != "" {
		t.Fatalf("empty secrets sealed to %q", s)
	}
	if m, err := b.Open(""); m != nil || err != nil {
		t.Fatalf("Open(\"\") = %v, %v", m, err)
	}
}

func TestOpenRefuses(t *testing.T) {
	b, other := newBox(t), newBox(t)
	sealed, _ := b.Seal(map[string]string{"sudo_password": "x"})
	tampered := []byte(sealed)
	tampered[len(tampered)-3] ^= 1
	for name, in := range map[string]string{
		"other key":  sealed,
		"tampered":   string(tampered),
		"no prefix":  strings.TrimPrefix(sealed, prefix),
		"bad base64": prefix + "!!!",
		"too short":  prefix + "AAAA",
	} {
		box := b
		if name == "other key" {
			box = other
		}
		if _, err := box.Open(in); err != ErrOpen {
			t.Errorf("%s: err = %v, want ErrOpen", name, err)
		}
	}
}

func TestParseKey(t *testing.T) {
	for _, in := range []string{"", "zz", strings.Repeat("ab", 31), strings.Repeat("ab", 33)} {
		if _, err := ParseKey(in); err == nil {
			t.Errorf("ParseKey(%q) accepted", in)
		} else if in != "" && strings.Contains(err.Error(), in) {
			t.Errorf("error echoes the key: %v", err)
		}
	}
	if _, err := New(make([]byte, 16)); err == nil {
		t.Error("New accepted a 16-byte key")
	}
}

func FuzzOpen(f *testing.F) {
	key := make([]byte, KeySize)
	b, _ := New(key)
	s, _ := b.Seal(map[string]string{"a": "b"})
	f.Add(s)
	f.Add("v1:")
	f.Fuzz(func(t *testing.T, in string) {
		_, _ = b.Open(in) // must never panic
	})
}
