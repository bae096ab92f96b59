package sqlite_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/muster-run/muster"
	"github.com/muster-run/muster/internal/sqlite"
	"github.com/muster-run/muster/internal/storetest"
)

func newStore(t testing.TB, opts ...muster.StoreOption) muster.Store {
	t.Helper()
	s, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "muster.db"), opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestConformance(t *testing.T) { storetest.Run(t, newStore) }

func BenchmarkDispatch(b *testing.B) { storetest.Benchmark(b, newStore) }

func BenchmarkDispatchBatch(b *testing.B) { storetest.BenchmarkBatch(b, newStore) }

// TestReopen checks that migrations run once and data survives a reopen.
func TestReopen(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "muster.db")
	s, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	res, err := s.SubmitJob(ctx, muster.Job{Kind: muster.JobTask, Targets: []string{"a"}})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	s, err = sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if j, err := s.GetJob(ctx, res.Job.ID); err != nil || j.Counts[muster.RunPending] != 1 {
		t.Fatalf("after reopen: %+v, %v", j, err)
	}
}
