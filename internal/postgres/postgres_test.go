package postgres_test

import (
	"context"
	"testing"

	"github.com/muster-run/muster"
	"github.com/muster-run/muster/internal/pgtest"
	"github.com/muster-run/muster/internal/postgres"
	"github.com/muster-run/muster/internal/storetest"
)

// factory gives every store its own fresh schema, dropped at cleanup.
func factory(t testing.TB) storetest.Factory {
	pgtest.URL(t)
	return func(t testing.TB, opts ...muster.StoreOption) muster.Store {
		s, err := postgres.Open(context.Background(), pgtest.Schema(t, ""), opts...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
}

func TestConformance(t *testing.T) { storetest.Run(t, factory(t)) }

func BenchmarkDispatch(b *testing.B) { storetest.Benchmark(b, factory(b)) }

func BenchmarkDispatchBatch(b *testing.B) { storetest.BenchmarkBatch(b, factory(b)) }

// TestConcurrentOpen checks that servers starting together migrate once.
func TestConcurrentOpen(t *testing.T) {
	newStore := factory(t)
	first := newStore(t).(*postgres.Store)
	var path string
	if err := first.DB().QueryRow(`SHOW search_path`).Scan(&path); err != nil {
		t.Fatal(err)
	}
	dsn := pgtest.WithSearchPath(t, pgtest.URL(t), path)
	errs := make(chan error, 4)
	for range 4 {
		go func() {
			s, err := postgres.Open(context.Background(), dsn)
			if err == nil {
				s.Close()
			}
			errs <- err
		}()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	var n int
	if err := first.DB().QueryRow(`SELECT COUNT(*) FROM schema_migrations`).Scan(&n); err != nil || n != 5 {
		t.Fatalf("schema_migrations has %d rows, %v", n, err)
	}
}
