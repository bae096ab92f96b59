package pki

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"slices"
	"sync"
	"testing"
	"time"
)

// The CA signing benchmarks: how many agent certificates a CA issues per
// second, on one goroutine, with muster's ed25519 CA key and with
// RSA-4096, Puppet's CA default. Both sign the same kind of request, an
// ed25519 agent CSR, so the CA's key is the only difference; every
// iteration is a whole [CA.Sign]: the CSR's checks (its ed25519 signature
// included), the certificate's template and the CA's signature. Besides
// ns/op they report certs/s and the p50, p95 and p99 of the individual
// signatures (each timed on its own), in microseconds. bench/pki/run.sh
// runs both and writes bench/results/pki.md.

func BenchmarkSignEd25519(b *testing.B) { benchSign(b, nil) }

func BenchmarkSignRSA4096(b *testing.B) { benchSign(b, rsa4096(b)) }

// rsa4096Key is made once per process: RSA-4096 key generation takes
// seconds and is no part of signing.
var rsa4096Key = sync.OnceValues(func() (*rsa.PrivateKey, error) {
	return rsa.GenerateKey(rand.Reader, 4096)
})

func rsa4096(b *testing.B) crypto.Signer {
	key, err := rsa4096Key()
	if err != nil {
		b.Fatal(err)
	}
	return key
}

// benchSign times CA.Sign with a CA on key (nil: ed25519, as
// LoadOrCreateCA makes).
func benchSign(b *testing.B, key crypto.Signer) {
	ca, err := createCA(key, t0)
	if err != nil {
		b.Fatal(err)
	}
	agentKey, err := NewKey()
	if err != nil {
		b.Fatal(err)
	}
	der, err := NewCSR(agentKey, "web1.example.com")
	if err != nil {
		b.Fatal(err)
	}
	csr, name, err := ParseCSR(der)
	if err != nil {
		b.Fatal(err)
	}
	lat := make([]time.Duration, 0, 4096)
	b.ReportAllocs()
	for b.Loop() {
		start := time.Now()
		if _, _, err := ca.Sign(csr, name, DefaultAgentLifetime, t0); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(start))
	}
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	pct := func(p float64) float64 {
		i := int(p*float64(len(lat))+0.5) - 1
		i = max(0, min(i, len(lat)-1))
		return float64(lat[i]) / float64(time.Microsecond)
	}
	b.ReportMetric(float64(len(lat))/b.Elapsed().Seconds(), "certs/s")
	b.ReportMetric(pct(0.50), "p50-us")
	b.ReportMetric(pct(0.95), "p95-us")
	b.ReportMetric(pct(0.99), "p99-us")
}
