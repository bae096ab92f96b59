package sqlstore

// output.go: the live output of running attempts. A chunk is stored only
// while its attempt runs, and every writer that ends attempts deletes the
// runs' chunks in its transaction (dropOutput), so the table holds the
// output of running attempts alone. Those writers are the queue's hot
// path, and most runs of a busy queue print nothing: they delete only for
// runs whose has_output is set, which AppendOutput sets in the
// transaction that stores a run's first chunk, and which they read with
// the run (on PostgreSQL under its row lock, so an append that committed
// while they waited for the lock is seen).

import (
	"context"
	"encoding/hex"
	"fmt"

	"github.com/muster-run/muster"
)

// maxOutputList caps OutputFilter.Limit.
const maxOutputList = 10000

// outputRow is a chunk to insert, bound through Dialect.Rows: its data as
// hex, and its place in the batch.
type outputRow struct {
	Ord     int64  `json:"ord"`
	RunID   int64  `json:"run_id"`
	Attempt int64  `json:"attempt"`
	Stream  string `json:"stream"`
	Data    string `json:"data"`
}

var outputCols = []Col{{"ord", "BIGINT"}, {"run_id", "BIGINT"}, {"attempt", "BIGINT"}, {"stream", "TEXT"}, {"data", "TEXT"}}

// AppendOutput implements muster.WorkQueue: one statement inserts the chunks
// whose attempt is running, in the batch's order, so their ids follow it;
// another marks their runs as having output.
func (s *Store) AppendOutput(ctx context.Context, chunks []muster.OutputChunk) error {
	if len(chunks) == 0 {
		return nil
	}
	rows := make([]outputRow, len(chunks))
	var runIDs []int64
	seen := make(map[int64]bool)
	for i, c := range chunks {
		if c.Stream != muster.OutputStdout && c.Stream != muster.OutputStderr {
			return fmt.Errorf("%w: output chunk %d of run %d: stream %q is neither %s nor %s",
				muster.ErrInvalid, i, c.RunID, c.Stream, muster.OutputStdout, muster.OutputStderr)
		}
		rows[i] = outputRow{Ord: int64(i), RunID: c.RunID, Attempt: int64(c.Attempt), Stream: c.Stream, Data: hex.EncodeToString(c.Data)}
		if !seen[c.RunID] {
			seen[c.RunID] = true
			runIDs = append(runIDs, c.RunID)
		}
	}
	return s.write(ctx, func(tx *Tx) error {
		if s.D.LockOutput != nil {
			if err := s.D.LockOutput(ctx, tx, runIDs); err != nil {
				return err
			}
		}
		args := []any{us(s.Opt.Now())}
		src, err := s.rows(rows, &args, outputCols...)
		if err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `INSERT INTO run_output (run_id, attempt, stream, data, created_at)
			SELECT v.run_id, v.attempt, v.stream, `+s.D.Unhex("v.data")+`, $1 FROM `+src+` v
			WHERE EXISTS (SELECT 1 FROM runs r WHERE r.id=v.run_id AND r.state='running' AND r.attempt=v.attempt)
			ORDER BY v.ord`, args...)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return err
		}
		// Only runs with a chunk stored (now or earlier) are marked: a
		// run's chunks are never without the mark.
		args = nil
		_, err = tx.ExecContext(ctx, `UPDATE runs SET has_output=1 WHERE `+s.ids("id", runIDs, &args)+` AND has_output=0
			AND EXISTS (SELECT 1 FROM run_output o WHERE o.run_id=runs.id)`, args...)
		return err
	})
}

// dropOutput deletes the chunks of the runs ids, inside the transaction
// that ends an attempt of each. Callers pass only the runs whose
// has_output they read set (but for CancelJob's waiting runs, which
// cannot have chunks, and whose cancel is rare).
func (s *Store) dropOutput(ctx context.Context, tx *Tx, ids []int64) error {
	if len(ids) == 0 {
		return nil
	}
	var args []any
	_, err := tx.ExecContext(ctx, `DELETE FROM run_output WHERE `+s.ids("run_id", ids, &args), args...)
	return err
}

// ListOutput implements muster.Jobs. The runs serving the job are those
// ListRuns finds for it: through requests, which link a job to its own
// runs and to the ones it was coalesced into.
func (s *Store) ListOutput(ctx context.Context, f muster.OutputFilter) ([]muster.OutputChunk, error) {
	if f.JobID <= 0 {
		return nil, fmt.Errorf("%w: live output is listed by job (got job %d)", muster.ErrInvalid, f.JobID)
	}
	limit := f.Limit
	switch {
	case limit <= 0:
		limit = 1000
	case limit > maxOutputList:
		limit = maxOutputList
	}
	return queryAll(ctx, s.R, scanChunk, `SELECT o.id, o.run_id, o.attempt, r.node, o.stream, o.data, o.created_at
		FROM run_output o JOIN runs r ON r.id = o.run_id
		WHERE o.run_id IN (SELECT run_id FROM requests WHERE job_id=$1) AND o.id > $2
		ORDER BY o.id LIMIT $3`, f.JobID, f.AfterID, limit)
}

func scanChunk(sc scanner) (muster.OutputChunk, error) {
	var c muster.OutputChunk
	var at int64
	err := sc.Scan(&c.ID, &c.RunID, &c.Attempt, &c.Node, &c.Stream, &c.Data, &at)
	if c.Data == nil {
		c.Data = []byte{}
	}
	c.At = fromUS(at)
	return c, err
}
