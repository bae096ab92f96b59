package main

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// FuzzReadRerun: any .rerun.json either is refused with an error or gives
// entries that each name a target with a success or failure status, and
// that survive a write and a read unchanged.
func FuzzReadRerun(f *testing.F) {
	for _, seed := range []string{
		`[{"target":"web1","status":"success"},{"target":"db1","status":"failure"}]`,
		`[]`,
		`[{"target":"a"}]`,
		`{"target":"a","status":"success"}`,
		`[{"target":"","status":"success"}]`,
		`[{"target":"a","status":"skipped","extra":1}]`,
		`[null]`,
		``,
	} {
		f.Add([]byte(seed))
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(dir, "in.json")
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		entries, err := readRerun(path)
		if err != nil {
			return
		}
		for _, e := range entries {
			if e.Target == "" || (e.Status != "success" && e.Status != "failure") {
				t.Fatalf("accepted entry %+v", e)
			}
		}
		out := filepath.Join(dir, "out.json")
		if err := writeRerun(out, entries); err != nil {
			t.Fatal(err)
		}
		again, err := readRerun(out)
		if err != nil || (len(entries) > 0 && !reflect.DeepEqual(again, entries)) {
			t.Fatalf("round trip: %+v, %v; want %+v", again, err, entries)
		}
	})
}
