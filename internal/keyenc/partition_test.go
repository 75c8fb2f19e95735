package keyenc

import (
	"testing"

	"github.com/featured-dev/featured/aggregate"
	"github.com/featured-dev/featured/internal/partition"
)

// TestPartitionOfEncoded checks that placing a key from its stored bytes
// (the migration's path) agrees with placing it from its value (ingest's
// and lookups'), and that int64 keys are placed by their kafka_key bytes.
func TestPartitionOfEncoded(t *testing.T) {
	const n = 16
	for _, v := range []aggregate.Value{
		{Kind: aggregate.KindString, S: "user-1"}, {Kind: aggregate.KindString, S: "ü"},
		{Kind: aggregate.KindInt64, I: 0}, {Kind: aggregate.KindInt64, I: -7}, {Kind: aggregate.KindInt64, I: 1 << 40},
	} {
		for _, enc := range []partition.KeyEncoding{partition.UTF8, partition.Decimal, partition.Int64BE} {
			key, err := AppendEntity(nil, v)
			if err != nil {
				t.Fatal(err)
			}
			want := Partition(v, enc, n)
			if got := PartitionOf(key, v.Kind, enc, n); got != want {
				t.Errorf("PartitionOf(%x, %v) = %d, Partition(%+v) = %d", key, enc, got, v, want)
			}
			var rk []byte
			if v.Kind == aggregate.KindString {
				rk = []byte(v.S)
			} else {
				rk = partition.AppendInt64(nil, v.I, enc)
			}
			if want != partition.Of(rk, n) {
				t.Errorf("Partition(%+v, %v) = %d, want partition.Of(%q) = %d", v, enc, want, rk, partition.Of(rk, n))
			}
		}
	}
}
