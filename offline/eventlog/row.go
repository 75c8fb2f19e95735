package eventlog

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/featured-dev/featured/aggregate"
	"github.com/featured-dev/featured/featurestore"
	"github.com/featured-dev/featured/internal/keyenc"
	"github.com/featured-dev/featured/offline/internal/codec"
)

// ErrCorrupt marks bytes of the offline log (a WAL frame, a log file, a
// record) that do not decode. Errors wrap it with the file and offset.
var ErrCorrupt = errors.New("eventlog: corrupt log data")

// Schema is one source schema as the log records it: the source, its entity
// key kind and its fields. Two schemas with the same content have the same
// fingerprint wherever they were defined. A Schema is immutable once made
// (readers on many goroutines share one), hence accessors, not fields.
type Schema struct {
	source   string
	keyKinds []aggregate.Kind
	names    []string
	kinds    []aggregate.Kind
	fp       uint64 // fingerprint of the above
}

// NewSchema returns the schema of source with entity key part kinds keyKinds
// (one for a one-entity key, several for a compound key, nil when no view
// reads the source) and
// the given fields; names and kinds are kept, not copied.
func NewSchema(source string, keyKinds []aggregate.Kind, names []string, kinds []aggregate.Kind) *Schema {
	if len(keyKinds) == 0 {
		keyKinds = nil
	}
	s := &Schema{source: source, keyKinds: keyKinds, names: names, kinds: kinds}
	h := uint64(14695981039346656037)
	mix := func(b []byte) {
		for _, c := range b {
			h ^= uint64(c)
			h *= 1099511628211
		}
		h ^= 0xff
		h *= 1099511628211
	}
	mix([]byte(source))
	mix(keyenc.AppendKinds(nil, keyKinds))
	for i, n := range names {
		mix([]byte(n))
		mix([]byte{byte(kinds[i])})
	}
	s.fp = h
	return s
}

func schemaOf(fs *featurestore.Schema) *Schema {
	return NewSchema(fs.Source, fs.KeyKinds, fs.Names, fs.Kinds)
}

// Source returns the source's name.
func (s *Schema) Source() string { return s.source }

// KeyKinds returns the kinds of the entity key's parts (nil when no view
// read the source); do not modify.
func (s *Schema) KeyKinds() []aggregate.Kind { return s.keyKinds }

// KeyKind returns the kind of a one-part key, KindNull for a compound key or
// none: the type of the log's entity column.
func (s *Schema) KeyKind() aggregate.Kind {
	if len(s.keyKinds) == 1 {
		return s.keyKinds[0]
	}
	return aggregate.KindNull
}

// Names returns the fields' names, in row order; do not modify.
func (s *Schema) Names() []string { return s.names }

// Fingerprint is equal for two schemas of equal content.
func (s *Schema) Fingerprint() uint64 { return s.fp }

// Field returns the index of name with kind in s, or -1.
func (s *Schema) Field(name string, kind aggregate.Kind) int {
	for i, n := range s.names {
		if n == name && s.kinds[i] == kind {
			return i
		}
	}
	return -1
}

// Row is one logged event as a scan decodes it. Scans reuse one Row for
// every call of their callback: it and its slices are valid only during
// the call, and read through accessors so that a reader cannot corrupt
// the scan's state.
type Row struct {
	schema       *Schema
	shard        int32
	lsn          int64
	ingestMillis int64
	commitMillis int64
	eventMillis  int64
	entity       []byte // keyenc
	hasPos       bool
	partition    int32
	offset       int64
	views        []int64
	fields       []aggregate.Value
}

// ViewKeyInt is a view version as Row.Views and Marker.View hold it:
// id<<32 | version.
func ViewKeyInt(vk featurestore.ViewKey) int64 { return int64(vk.ID)<<32 | int64(vk.Version) }

// Schema returns the row's source schema.
func (r *Row) Schema() *Schema { return r.schema }

// Shard returns the store shard that logged the row.
func (r *Row) Shard() int32 { return r.shard }

// LSN returns the row's position in its shard's log (fold order).
func (r *Row) LSN() int64 { return r.lsn }

// IngestMillis returns the ingest clock at the event's admission.
func (r *Row) IngestMillis() int64 { return r.ingestMillis }

// CommitMillis returns the store's clock when the row's batch became
// visible to reads (see the package doc).
func (r *Row) CommitMillis() int64 { return r.commitMillis }

// EventMillis returns the event's time.
func (r *Row) EventMillis() int64 { return r.eventMillis }

// Entity returns the entity key (keyenc).
func (r *Row) Entity() []byte { return r.entity }

// Views returns the view versions the store folded the row into, as
// ViewKeyInt.
func (r *Row) Views() []int64 { return r.views }

// Fields returns the source's fields, in Schema().Names() order.
func (r *Row) Fields() []aggregate.Value { return r.fields }

// folded reports whether the row was folded into view version vk.
func (r *Row) folded(vk int64) bool {
	for _, v := range r.views {
		if v == vk {
			return true
		}
	}
	return false
}

// appendRowBody appends a row's body (everything but its schema reference,
// LSN and commit time, which frames carry):
//
//	varint ingest | varint event | uvarint len, entity | byte flags
//	[uvarint len, topic | varint partition | varint offset]   (flags&1)
//	uvarint nviews | varint view...  | per schema field: value
func appendRowBody(b []byte, ingest, event int64, entity []byte, pos *featurestore.Position, views []int64, fields []aggregate.Value, nfields int) []byte {
	b = binary.AppendVarint(b, ingest)
	b = binary.AppendVarint(b, event)
	b = binary.AppendUvarint(b, uint64(len(entity)))
	b = append(b, entity...)
	if pos != nil {
		b = append(b, 1)
		b = binary.AppendUvarint(b, uint64(len(pos.Topic)))
		b = append(b, pos.Topic...)
		b = binary.AppendVarint(b, int64(pos.Partition))
		b = binary.AppendVarint(b, pos.Offset)
	} else {
		b = append(b, 0)
	}
	b = binary.AppendUvarint(b, uint64(len(views)))
	for _, v := range views {
		b = binary.AppendVarint(b, v)
	}
	for i := 0; i < nfields; i++ {
		var v aggregate.Value
		if i < len(fields) {
			v = fields[i]
		}
		b = codec.AppendValue(b, v)
	}
	return b
}

// AppendRecord appends r whole but for its Kafka position (its schema as
// the number schemaID, shard, LSN, commit time, then the body of a WAL
// row): for a reader's own files (the export's spill buckets), read back by
// DecodeRecord.
func AppendRecord(b []byte, r *Row, schemaID int) []byte {
	b = binary.AppendUvarint(b, uint64(schemaID))
	b = binary.AppendVarint(b, int64(r.shard))
	b = binary.AppendVarint(b, r.lsn)
	b = binary.AppendVarint(b, r.commitMillis)
	return appendRowBody(b, r.ingestMillis, r.eventMillis, r.entity, nil, r.views, r.fields, len(r.schema.names))
}

// DecodeRecord decodes what AppendRecord wrote into r (reused), with
// schemas[schemaID] as its schema. An error wraps ErrCorrupt.
func DecodeRecord(rec []byte, r *Row, schemas []*Schema) error {
	d := codec.NewDecoder(rec)
	id := d.Uvarint()
	if d.Err() != nil || id >= uint64(len(schemas)) {
		return corruptf("record: schema %d", id)
	}
	r.schema = schemas[id]
	r.shard = int32(d.Varint())
	r.lsn = d.Varint()
	r.commitMillis = d.Varint()
	decodeRowBody(&d, r)
	if d.Err() != nil {
		return corruptf("record")
	}
	return nil
}

// decodeRowBody decodes what appendRowBody wrote into r (r.schema set).
func decodeRowBody(d *codec.Decoder, r *Row) {
	r.ingestMillis = d.Varint()
	r.eventMillis = d.Varint()
	r.entity = append(r.entity[:0], d.Bytes()...)
	r.hasPos = d.Byte() == 1
	if r.hasPos {
		d.Bytes() // topic: the source names it
		r.partition = int32(d.Varint())
		r.offset = d.Varint()
	}
	nv := d.Uvarint()
	if nv > uint64(d.Len()) {
		d.Fail()
		return
	}
	r.views = r.views[:0]
	for i := uint64(0); i < nv; i++ {
		r.views = append(r.views, d.Varint())
	}
	n := len(r.schema.names)
	if cap(r.fields) < n {
		r.fields = make([]aggregate.Value, n)
	}
	r.fields = r.fields[:n]
	for i := 0; i < n; i++ {
		r.fields[i] = d.Value(0)
	}
}

// appendSchema and decodeSchema encode a schema definition.
func appendSchema(b []byte, s *Schema) []byte {
	b = binary.AppendUvarint(b, uint64(len(s.source)))
	b = append(b, s.source...)
	b = keyenc.AppendKinds(b, s.keyKinds)
	b = binary.AppendUvarint(b, uint64(len(s.names)))
	for i, n := range s.names {
		b = binary.AppendUvarint(b, uint64(len(n)))
		b = append(b, n...)
		b = append(b, byte(s.kinds[i]))
	}
	return b
}

func decodeSchema(d *codec.Decoder) *Schema {
	src := string(d.Bytes())
	kk := keyenc.ReadKinds(d.Byte)
	n := d.Uvarint()
	if n > uint64(d.Len()) {
		d.Fail()
		return nil
	}
	names := make([]string, 0, n)
	kinds := make([]aggregate.Kind, 0, n)
	for i := uint64(0); i < n && d.Err() == nil; i++ {
		names = append(names, string(d.Bytes()))
		kinds = append(kinds, aggregate.Kind(d.Byte()))
	}
	if d.Err() != nil {
		return nil
	}
	return NewSchema(src, kk, names, kinds)
}

func corruptf(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrCorrupt}, args...)...)
}
