package export

// The spilled path of an export: spine entries and log rows partitioned by
// a hash of the entity key into buckets of spill files, joined a bucket at
// a time into result runs sorted by spine row (Export merges them back).

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/featured-dev/featured/aggregate"
	"github.com/featured-dev/featured/offline/eventlog"
	"github.com/featured-dev/featured/offline/internal/codec"
)

// splitSpine reads the spine once, writing (row, key, T) of every row to
// each group's buckets. It returns the row count.
func (x *Exporter) splitSpine(src *spineSource, keys map[string]aggregate.Kind, timeCol string, groups []*group, spines []*buckets) (int64, error) {
	var buf []byte
	var err error
	_, rows, rerr := x.readSpine(src, keys, timeCol, groups, false, func(gi int, key []byte, row, t int64) {
		if err != nil {
			return
		}
		buf = binary.AppendUvarint(buf[:0], uint64(row))
		buf = binary.AppendUvarint(buf, uint64(len(key)))
		buf = append(buf, key...)
		buf = binary.AppendVarint(buf, t)
		err = spines[gi].add(bucketOf(key, spines[gi].n), buf)
	})
	if rerr != nil {
		return 0, rerr
	}
	return rows, err
}

// bucketOf is the bucket of an encoded entity key (FNV-1a, like the
// store's shard hash but mixed, so buckets do not align with shards).
func bucketOf(key []byte, n int) int {
	if n == 1 {
		return 0
	}
	h := uint64(14695981039346656037)
	for _, c := range key {
		h ^= uint64(c)
		h *= 1099511628211
	}
	h ^= h >> 29
	return int(h % uint64(n))
}

// splitLog scans the log rows of the group's sources into buckets, keeping
// only keys in keyset when it is not nil.
func (x *Exporter) splitLog(ctx context.Context, g *group, logs *buckets, keyset map[string]bool) (int64, error) {
	var n int64
	var buf []byte
	schemas := map[uint64]int{}
	err := x.log.Scan(ctx, g.sources, func(r *eventlog.Row) error {
		if keyset != nil && !keyset[string(r.Entity())] {
			return nil
		}
		id, ok := schemas[r.Schema().Fingerprint()]
		if !ok {
			id = len(logs.schemas)
			schemas[r.Schema().Fingerprint()] = id
			logs.schemas = append(logs.schemas, r.Schema())
		}
		buf = eventlog.AppendRecord(buf[:0], r, id)
		n++
		return logs.add(bucketOf(r.Entity(), logs.n), buf)
	})
	return n, err
}

// spillJoins is how many buckets are joined at once: a bucket's decoding
// and encoding are serial, and overlap with the other's join. The bucket
// count is sized so that this many fit in the memory budget together.
const spillJoins = 2

// joinBuckets runs joinBucket over every bucket, spillJoins at a time
// (each bucket's files and run are its own).
func (x *Exporter) joinBuckets(ctx context.Context, g *group, req *Request, spines, logs, runs *buckets) error {
	var next atomic.Int32
	errs := make([]error, spillJoins)
	var wg sync.WaitGroup
	for w := range spillJoins {
		wg.Go(func() {
			for b := int(next.Add(1)) - 1; b < spines.n; b = int(next.Add(1)) - 1 {
				if errs[w] = ctx.Err(); errs[w] != nil {
					return
				}
				if errs[w] = x.joinBucket(g, req, spines, logs, b, runs); errs[w] != nil {
					next.Store(int32(spines.n)) // the others stop at their next bucket
					return
				}
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// joinBucket computes every result of bucket b of group g and adds them,
// sorted by spine row, to run b: per row a uvarint row, then per column a
// status byte and the value.
func (x *Exporter) joinBucket(g *group, req *Request, spines, logs *buckets, b int, runs *buckets) error {
	ents := newEntityIndex()
	sp := &spineSet{}
	err := spines.each(b, func(rec []byte) error {
		d := codec.NewDecoder(rec)
		idx := int64(d.Uvarint())
		key := d.Bytes()
		t := d.Varint()
		if d.Err() != nil {
			return corruptf("spill: spine entry")
		}
		sp.add(ents.add(key), idx, t)
		return nil
	})
	if err != nil {
		return err
	}
	lt := x.newLogTable(g)
	chunk := lt.newChunk()
	fmaps := map[*eventlog.Schema][]int{}
	var r eventlog.Row
	err = logs.each(b, func(rec []byte) error {
		if err := eventlog.DecodeRecord(rec, &r, logs.schemas); err != nil {
			return fmt.Errorf("%w: spill: %w", ErrCorrupt, err)
		}
		e, ok := ents.ord[string(r.Entity())]
		if !ok {
			return nil
		}
		fm := fmaps[r.Schema()]
		if fm == nil {
			fm = lt.fieldMap(r.Schema())
			fmaps[r.Schema()] = fm
		}
		return lt.appendRow(&r, e, chunk, fm)
	})
	if err != nil {
		return err
	}
	lt.byEnt.group(lt.ent, ents.len())
	sp.group(sp.ent, ents.len())
	res := newResults(g.cols, len(sp.ent))
	x.join(g, req.Mode, sp, lt, ents.len(), res)
	order := make([]int32, len(sp.row))
	for i := range order {
		order[i] = int32(i)
	}
	slices.SortStableFunc(order, func(a, b int32) int { return cmpInt(sp.row[a], sp.row[b]) })
	var buf []byte
	for _, slot := range order {
		buf = binary.AppendUvarint(buf[:0], uint64(sp.row[slot]))
		for c := range g.cols {
			v := res.get(int(slot), c)
			buf = append(buf, byte(v.Status))
			buf = codec.AppendValue(buf, v.Value)
		}
		if err := runs.add(b, buf); err != nil {
			return err
		}
	}
	return nil
}
