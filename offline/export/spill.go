package export

import (
	"bufio"
	"container/heap"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/featured-dev/featured/aggregate"
	"github.com/featured-dev/featured/offline/eventlog"
	"github.com/featured-dev/featured/offline/internal/codec"
)

// spillBytes is how much of a bucket is buffered before it goes to its
// spill file, when there is more than one bucket.
const spillBytes = 1 << 20

// buckets are n append-only sequences of length-prefixed records. With one
// bucket everything stays in memory; with more, each bucket spills to its
// own file past spillBytes, so the export holds one bucket at a time.
type buckets struct {
	prefix  string
	n       int
	bufs    [][]byte
	files   []*os.File
	schemas []*eventlog.Schema // log buckets: the schemas rows refer to
}

func newBuckets(prefix string, n int) *buckets {
	return &buckets{prefix: prefix, n: n, bufs: make([][]byte, n), files: make([]*os.File, n)}
}

func (b *buckets) add(i int, rec []byte) error {
	buf := binary.AppendUvarint(b.bufs[i], uint64(len(rec)))
	b.bufs[i] = append(buf, rec...)
	if b.n > 1 && len(b.bufs[i]) >= spillBytes {
		return b.spill(i)
	}
	return nil
}

func (b *buckets) spill(i int) error {
	if b.files[i] == nil {
		f, err := os.Create(fmt.Sprintf("%s-%03d", b.prefix, i))
		if err != nil {
			return fmt.Errorf("offline: spill: %w", err)
		}
		b.files[i] = f
	}
	if _, err := b.files[i].Write(b.bufs[i]); err != nil {
		return fmt.Errorf("offline: spill: %w", err)
	}
	b.bufs[i] = b.bufs[i][:0]
	return nil
}

// reader returns a reader of bucket i's records from the start.
func (b *buckets) reader(i int) (io.Reader, error) {
	if b.files[i] == nil {
		return &sliceReader{b: b.bufs[i]}, nil
	}
	if _, err := b.files[i].Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	return io.MultiReader(bufio.NewReaderSize(b.files[i], 256<<10), &sliceReader{b: b.bufs[i]}), nil
}

type sliceReader struct{ b []byte }

func (s *sliceReader) Read(p []byte) (int, error) {
	if len(s.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p, s.b)
	s.b = s.b[n:]
	return n, nil
}

// each calls fn with every record of bucket i (rec is reused after fn).
func (b *buckets) each(i int, fn func(rec []byte) error) error {
	if b.files[i] == nil {
		d := b.bufs[i]
		for len(d) > 0 {
			n, k := binary.Uvarint(d)
			if k <= 0 || uint64(len(d)-k) < n {
				return corruptf("spill bucket %d", i)
			}
			if err := fn(d[k : k+int(n)]); err != nil {
				return err
			}
			d = d[k+int(n):]
		}
		return nil
	}
	r, err := b.reader(i)
	if err != nil {
		return err
	}
	rr := &recordReader{r: bufio.NewReader(r)}
	for {
		rec, err := rr.next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := fn(rec); err != nil {
			return err
		}
	}
}

func (b *buckets) remove() {
	for i, f := range b.files {
		if f != nil {
			f.Close()
			os.Remove(f.Name())
			b.files[i] = nil
		}
		b.bufs[i] = nil
	}
}

type recordReader struct {
	r   *bufio.Reader
	buf []byte
}

func (r *recordReader) next() ([]byte, error) {
	n, err := binary.ReadUvarint(r.r)
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil, io.EOF
		}
		return nil, corruptf("spill: %v", err)
	}
	if cap(r.buf) < int(n) {
		r.buf = make([]byte, n)
	}
	r.buf = r.buf[:n]
	if _, err := io.ReadFull(r.r, r.buf); err != nil {
		return nil, corruptf("spill: %v", err)
	}
	return r.buf, nil
}

// runMerger merges the sorted result runs of a group's buckets back into
// spine order.
type runMerger struct {
	cols []column
	h    runHeap
	vals []aggregate.Result
}

type runHead struct {
	rr  *recordReader
	row int64
	rec []byte
}

type runHeap []*runHead

func (h runHeap) Len() int           { return len(h) }
func (h runHeap) Less(i, j int) bool { return h[i].row < h[j].row }
func (h runHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *runHeap) Push(x any)        { *h = append(*h, x.(*runHead)) }
func (h *runHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

func newRunMerger(runs *buckets, cols []column) (*runMerger, error) {
	m := &runMerger{cols: cols, vals: make([]aggregate.Result, len(cols))}
	for i := 0; i < runs.n; i++ {
		r, err := runs.reader(i)
		if err != nil {
			return nil, err
		}
		h := &runHead{rr: &recordReader{r: bufio.NewReaderSize(r, 64<<10)}}
		ok, err := h.advance()
		if err != nil {
			return nil, err
		}
		if ok {
			m.h = append(m.h, h)
		}
	}
	heap.Init(&m.h)
	return m, nil
}

func (h *runHead) advance() (bool, error) {
	rec, err := h.rr.next()
	if errors.Is(err, io.EOF) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	h.rec = rec
	v, k := binary.Uvarint(rec)
	if k <= 0 {
		return false, corruptf("result run")
	}
	h.row = int64(v)
	h.rec = rec[k:]
	return true, nil
}

// next returns the results of spine row row, which must be the smallest
// row left.
func (m *runMerger) next(row int64) ([]aggregate.Result, error) {
	if len(m.h) == 0 || m.h[0].row != row {
		return nil, fmt.Errorf("offline: internal error: no result for spine row %d", row)
	}
	h := m.h[0]
	d := codec.NewDecoder(h.rec)
	for i := range m.cols {
		m.vals[i].Status = aggregate.Status(d.Byte())
		m.vals[i].Value = d.Value(0)
	}
	if d.Err() != nil {
		return nil, corruptf("result of row %d", row)
	}
	ok, err := h.advance()
	if err != nil {
		return nil, err
	}
	if ok {
		heap.Fix(&m.h, 0)
	} else {
		heap.Pop(&m.h)
	}
	return m.vals, nil
}

// arrays merges the results of spine rows [lo, lo+n) into columns.
func (m *runMerger) arrays(lo int64, n int) ([]arrow.Array, error) {
	res := newResults(m.cols, n)
	for i := 0; i < n; i++ {
		vals, err := m.next(lo + int64(i))
		if err != nil {
			return nil, err
		}
		for c := range vals {
			res.set(i, c, &vals[c])
		}
	}
	return res.columns(0, n), nil
}

// ErrCorrupt marks a spill file (or a result run) that does not read back
// as written: a disk or filesystem fault under the export's temporary
// directory. Errors wrap it with the bucket and record.
var ErrCorrupt = errors.New("export: corrupt spill data")

func corruptf(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrCorrupt}, args...)...)
}
