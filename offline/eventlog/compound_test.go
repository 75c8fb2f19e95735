package eventlog

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/featured-dev/featured/aggregate"
	"github.com/featured-dev/featured/featurestore"
	"github.com/featured-dev/featured/internal/keyenc"
)

// TestLogCompoundKey: rows of a source keyed by (int64, string) keep their
// key bytes and the key's part kinds through the WAL and the sealed Parquet
// files, and the bytes decode back into the parts.
func TestLogCompoundKey(t *testing.T) {
	kinds := []aggregate.Kind{aggregate.KindInt64, aggregate.KindString}
	sc := &featurestore.Schema{Source: "trips", KeyKinds: kinds, Names: []string{"fare"}, Kinds: []aggregate.Kind{aggregate.KindFloat64}}
	now := time.UnixMilli(1_800_000_000_000)
	l, err := Open(t.TempDir(), Options{SegmentBytes: 4096, Retention: -1, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := l.Recover(0, nil); err != nil {
		t.Fatal(err)
	}
	keyOf := func(i int) []byte {
		k, err := keyenc.AppendKey(nil, aggregate.Value{Kind: aggregate.KindInt64, I: int64(i % 7)},
			aggregate.Value{Kind: aggregate.KindString, S: string(rune('a' + i%5))})
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	const rows = 400
	for i := 0; i < rows; i++ {
		l.Append(0, &featurestore.Write{
			Entity: keyOf(i), EventMillis: now.UnixMilli() + int64(i), IngestMillis: now.UnixMilli(), Schema: sc,
			Fields: []aggregate.Value{{Kind: aggregate.KindFloat64, F: float64(i)}},
		}, []featurestore.ViewKey{{ID: 1, Version: 1}})
		if i%20 == 19 {
			commit(t, l, 0, now.UnixMilli())
			l.Committed(0, now.UnixMilli(), nil)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if files, _ := ListFiles(l.dir, "trips"); len(files) >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no sealed Parquet file after 10s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	seen := 0
	err = l.Scan(context.Background(), map[string]bool{"trips": true}, func(r *Row) error {
		i := int(r.EventMillis() - now.UnixMilli())
		if !slices.Equal(r.Schema().KeyKinds(), kinds) {
			t.Fatalf("row %d: key kinds %v, want %v", i, r.Schema().KeyKinds(), kinds)
		}
		if string(r.Entity()) != string(keyOf(i)) {
			t.Fatalf("row %d: key %q, want %q", i, r.Entity(), keyOf(i))
		}
		parts, err := keyenc.DecodeKey(nil, r.Entity(), r.Schema().KeyKinds())
		if err != nil || parts[0].I != int64(i%7) || parts[1].S != string(rune('a'+i%5)) {
			t.Fatalf("row %d: key decodes to %v, %v", i, parts, err)
		}
		seen++
		return nil
	})
	if err != nil || seen != rows {
		t.Fatalf("scan: %d rows, %v; want %d", seen, err, rows)
	}
}
