package offline

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"github.com/featured-dev/featured/aggregate"
	"github.com/featured-dev/featured/featurestore"
)

// ErrCorrupt marks bytes in the offline log (a WAL frame, a spill file) that
// do not decode. Errors wrap it with the file and offset.
var ErrCorrupt = errors.New("offline: corrupt log data")

// schema is one source schema as the log records it: the source, its entity
// key kind and its fields. Two schemas with the same content have the same
// fingerprint wherever they were defined.
type schema struct {
	source  string
	keyKind aggregate.Kind
	names   []string
	kinds   []aggregate.Kind
	fp      uint64 // fingerprint of the above
}

func newSchema(source string, keyKind aggregate.Kind, names []string, kinds []aggregate.Kind) *schema {
	s := &schema{source: source, keyKind: keyKind, names: names, kinds: kinds}
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
	mix([]byte{byte(keyKind)})
	for i, n := range names {
		mix([]byte(n))
		mix([]byte{byte(kinds[i])})
	}
	s.fp = h
	return s
}

func schemaOf(fs *featurestore.Schema) *schema {
	return newSchema(fs.Source, fs.KeyKind, fs.Names, fs.Kinds)
}

// field returns the index of name with kind in s, or -1.
func (s *schema) field(name string, kind aggregate.Kind) int {
	for i, n := range s.names {
		if n == name && s.kinds[i] == kind {
			return i
		}
	}
	return -1
}

// row is one logged event. views are the view versions it was folded into,
// each as id<<32 | version.
type row struct {
	schema       *schema
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

func viewKeyInt(vk featurestore.ViewKey) int64 { return int64(vk.ID)<<32 | int64(vk.Version) }

// folded reports whether the row was folded into view version vk.
func (r *row) folded(vk int64) bool {
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
		b = appendValue(b, v)
	}
	return b
}

// appendValue encodes one value: a kind byte, then int64/bool as varint,
// float64 as 8 bytes, string as uvarint length and bytes, list as uvarint
// count and values.
func appendValue(b []byte, v aggregate.Value) []byte {
	b = append(b, byte(v.Kind))
	switch v.Kind {
	case aggregate.KindInt64, aggregate.KindBool:
		b = binary.AppendVarint(b, v.I)
	case aggregate.KindFloat64:
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(v.F))
	case aggregate.KindString:
		b = binary.AppendUvarint(b, uint64(len(v.S)))
		b = append(b, v.S...)
	case aggregate.KindList:
		b = binary.AppendUvarint(b, uint64(len(v.L)))
		for _, e := range v.L {
			b = appendValue(b, e)
		}
	}
	return b
}

// decoder reads the encodings above from a buffer, remembering the first
// error.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail() {
	if d.err == nil {
		d.err = ErrCorrupt
	}
	d.b = nil
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) byte1() byte {
	if len(d.b) < 1 {
		d.fail()
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *decoder) bytes() []byte {
	n := d.uvarint()
	if uint64(len(d.b)) < n {
		d.fail()
		return nil
	}
	out := d.b[:n:n]
	d.b = d.b[n:]
	return out
}

func (d *decoder) value(depth int) aggregate.Value {
	k := aggregate.Kind(d.byte1())
	switch k {
	case aggregate.KindNull:
		return aggregate.Value{}
	case aggregate.KindInt64, aggregate.KindBool:
		return aggregate.Value{Kind: k, I: d.varint()}
	case aggregate.KindFloat64:
		if len(d.b) < 8 {
			d.fail()
			return aggregate.Value{}
		}
		f := math.Float64frombits(binary.LittleEndian.Uint64(d.b))
		d.b = d.b[8:]
		return aggregate.Value{Kind: k, F: f}
	case aggregate.KindString:
		return aggregate.Value{Kind: k, S: string(d.bytes())}
	case aggregate.KindList:
		n := d.uvarint()
		if depth > 0 || n > uint64(len(d.b)) {
			d.fail()
			return aggregate.Value{}
		}
		l := make([]aggregate.Value, 0, n)
		for i := uint64(0); i < n && d.err == nil; i++ {
			l = append(l, d.value(depth+1))
		}
		return aggregate.Value{Kind: k, L: l}
	}
	d.fail()
	return aggregate.Value{}
}

// rowBody decodes what appendRowBody wrote into r (r.schema set).
func (d *decoder) rowBody(r *row) {
	r.ingestMillis = d.varint()
	r.eventMillis = d.varint()
	r.entity = append(r.entity[:0], d.bytes()...)
	r.hasPos = d.byte1() == 1
	if r.hasPos {
		d.bytes() // topic: the source names it
		r.partition = int32(d.varint())
		r.offset = d.varint()
	}
	nv := d.uvarint()
	if nv > uint64(len(d.b)) {
		d.fail()
		return
	}
	r.views = r.views[:0]
	for i := uint64(0); i < nv; i++ {
		r.views = append(r.views, d.varint())
	}
	n := len(r.schema.names)
	if cap(r.fields) < n {
		r.fields = make([]aggregate.Value, n)
	}
	r.fields = r.fields[:n]
	for i := 0; i < n; i++ {
		r.fields[i] = d.value(0)
	}
}

// appendSchema and schemaDef encode a schema definition.
func appendSchema(b []byte, s *schema) []byte {
	b = binary.AppendUvarint(b, uint64(len(s.source)))
	b = append(b, s.source...)
	b = append(b, byte(s.keyKind))
	b = binary.AppendUvarint(b, uint64(len(s.names)))
	for i, n := range s.names {
		b = binary.AppendUvarint(b, uint64(len(n)))
		b = append(b, n...)
		b = append(b, byte(s.kinds[i]))
	}
	return b
}

func (d *decoder) schemaDef() *schema {
	src := string(d.bytes())
	kk := aggregate.Kind(d.byte1())
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.fail()
		return nil
	}
	names := make([]string, 0, n)
	kinds := make([]aggregate.Kind, 0, n)
	for i := uint64(0); i < n && d.err == nil; i++ {
		names = append(names, string(d.bytes()))
		kinds = append(kinds, aggregate.Kind(d.byte1()))
	}
	if d.err != nil {
		return nil
	}
	return newSchema(src, kk, names, kinds)
}

func corruptf(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrCorrupt}, args...)...)
}
