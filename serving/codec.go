package serving

import (
	"encoding/binary"
	"math"
	"reflect"
	"unicode/utf8"
	"unsafe"

	"google.golang.org/grpc/encoding"
	protocodec "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/timestamppb"

	featuredv1 "github.com/featured-dev/featured/api/featured/v1"
)

// codec is grpc-go's "proto" codec with one fast path: a
// GetOnlineFeaturesResponse, the only large message featured sends, is
// written by the hand-written encoder below (no reflection, one pass over
// plain fields) instead of proto.Marshal. Its output is byte for byte what
// proto.Marshal writes (TestCodecMatchesProtoMarshal); a message the encoder
// does not handle exactly (unknown fields, nil elements in a repeated field,
// invalid UTF-8) and every other message, and every Unmarshal, go to
// grpc-go's codec.
//
// It is registered under grpc-go's name, "proto", when the package is
// loaded, so that it applies to every gRPC server and client in the process
// (featured's server registered by RegisterGRPC and any other) and no client
// needs to know of it. Registering replaces grpc-go's codec of that name,
// which codec keeps and delegates to.
type codec struct {
	base encoding.CodecV2
}

func init() {
	// Importing grpc-go's codec package makes its init (which registers
	// "proto") run before this one.
	encoding.RegisterCodecV2(codec{base: encoding.GetCodecV2(protocodec.Name)})
}

func (codec) Name() string { return protocodec.Name }

func (c codec) Marshal(v any) (mem.BufferSlice, error) {
	if m, ok := v.(*featuredv1.GetOnlineFeaturesResponse); ok && m != nil {
		w := responseWriter{pool: mem.DefaultBufferPool()}
		if w.response(m) {
			return w.bufferSlice(), nil
		}
		w.release()
	}
	return c.base.Marshal(v)
}

func (c codec) Unmarshal(data mem.BufferSlice, v any) error { return c.base.Unmarshal(data, v) }

// Field numbers of api/featured/v1 (serving.proto, value.proto) and
// google.protobuf.Timestamp. TestCodecMatchesProtoMarshal compares the
// encoder with proto.Marshal, so a change to the protos that this file
// misses fails there.
const (
	fResponseMetadata = 1 // GetOnlineFeaturesResponse.metadata
	fResponseResults  = 2 // GetOnlineFeaturesResponse.results
	fMetadataNames    = 1 // GetOnlineFeaturesResponseMetadata.feature_names
	fListVal          = 1 // FeatureList.val, ValueList.val
	fVectorValues     = 1 // FeatureVector.values
	fVectorStatuses   = 2 // FeatureVector.statuses (packed)
	fVectorTimestamps = 3 // FeatureVector.event_timestamps
	fTimestampSeconds = 1
	fTimestampNanos   = 2
	fValueInt64       = 1
	fValueDouble      = 2
	fValueString      = 3
	fValueBool        = 4
	fValueList        = 5
)

// Tag bytes of the fields written most (all field numbers are below 16, so
// every tag is one byte).
const (
	tagResponseResults  = fResponseResults<<3 | byte(protowire.BytesType)
	tagVectorValues     = fVectorValues<<3 | byte(protowire.BytesType) // also ValueList.val
	tagVectorStatuses   = fVectorStatuses<<3 | byte(protowire.BytesType)
	tagVectorTimestamps = fVectorTimestamps<<3 | byte(protowire.BytesType)
	tagTimestampSeconds = fTimestampSeconds<<3 | byte(protowire.VarintType)
	tagTimestampNanos   = fTimestampNanos<<3 | byte(protowire.VarintType)
	tagValueInt64       = fValueInt64<<3 | byte(protowire.VarintType)
	tagValueDouble      = fValueDouble<<3 | byte(protowire.Fixed64Type)
	tagValueString      = fValueString<<3 | byte(protowire.BytesType)
	tagValueBool        = fValueBool<<3 | byte(protowire.VarintType)
	tagValueList        = fValueList<<3 | byte(protowire.BytesType)
)

// responseWriter writes a GetOnlineFeaturesResponse in one pass that also
// checks it, returning false for what it does not write exactly as
// proto.Marshal would: unknown fields (only a message decoded from a newer
// peer has them), nil elements of repeated message fields, strings that are
// not valid UTF-8 (which proto.Marshal refuses for a proto3 string) and a
// Value kind this file does not know. The caller then falls back to
// proto.Marshal. It looks at every message each time, whoever built it, so
// that a message changed after newResponse (by an interceptor, say) is
// still written right or not at all.
//
// Its buffer comes from grpc-go's pool, sized from the shape of the message
// (the cells' worst cases without their strings); strings and lists may
// move it to a larger one.
type responseWriter struct {
	pool mem.BufferPool
	b    []byte
	buf  *[]byte // the pool's buffer that b starts (b is a prefix of *buf)
}

// Worst cases of one cell's encoding, with tag and length, without a
// string's or list's bytes: a Value of a 10-byte varint, a Timestamp of
// two 10-byte varints (nanos is an int32 but a negative one takes 10), a
// status varint.
const (
	maxWireValue  = 2 + 1 + 10
	maxWireStamp  = 2 + 1 + 10 + 1 + 10
	maxWireStatus = 10
)

// reserve makes room for n more bytes, moving b to a larger buffer. Small
// buffers come from the pool too: the first one is sized by a guess that
// may be several times too large, and a pooled one costs no garbage.
func (w *responseWriter) reserve(n int) {
	if cap(w.b)-len(w.b) >= n {
		return
	}
	buf := w.pool.Get(max(2*cap(w.b), len(w.b)+n))
	b := append((*buf)[:0], w.b...)
	w.release()
	w.b, w.buf = b, buf
}

// release returns the pool's buffer, if any.
func (w *responseWriter) release() {
	if w.buf != nil {
		w.pool.Put(w.buf)
		w.buf = nil
	}
}

// bufferSlice hands the buffer over; mem.NewBuffer gives one too small to
// be worth returning to the pool to the garbage collector instead.
func (w *responseWriter) bufferSlice() mem.BufferSlice {
	*w.buf = w.b
	return mem.BufferSlice{mem.NewBuffer(w.buf, w.pool)}
}

func (w *responseWriter) response(m *featuredv1.GetOnlineFeaturesResponse) bool {
	// Positions come only from a node in a cluster, a few per response:
	// proto.Marshal writes them.
	if hasUnknown(m, offResponse) || len(m.Positions) > 0 {
		return false
	}
	// The first buffer holds the whole message unless strings or lists
	// overflow it.
	size := 16
	names := 0
	if md := m.Metadata; md != nil {
		if hasUnknown(md, offMetadata) {
			return false
		}
		if l := md.FeatureNames; l != nil {
			if hasUnknown(l, offFeatureList) {
				return false
			}
			for _, name := range l.Val {
				if !utf8.ValidString(name) {
					return false
				}
				names += 1 + protowire.SizeBytes(len(name))
			}
			size += names
		}
	}
	for _, v := range m.Results {
		if v != nil {
			size += vectorGuess(v)
		}
	}
	w.reserve(size)

	if md := m.Metadata; md != nil {
		w.b = append(w.b, fResponseMetadata<<3|byte(protowire.BytesType))
		if l := md.FeatureNames; l != nil {
			w.b = protowire.AppendVarint(w.b, uint64(1+protowire.SizeBytes(names)))
			w.b = append(w.b, fMetadataNames<<3|byte(protowire.BytesType))
			w.b = protowire.AppendVarint(w.b, uint64(names))
			for _, name := range l.Val {
				w.b = append(w.b, fListVal<<3|byte(protowire.BytesType))
				w.b = protowire.AppendString(w.b, name)
			}
		} else {
			w.b = append(w.b, 0)
		}
	}
	for _, v := range m.Results {
		if v == nil || !w.vector(v) {
			return false
		}
	}
	return true
}

// vectorGuess is the size of v's encoding if its values hold no strings or
// lists, at most.
func vectorGuess(v *featuredv1.FeatureVector) int {
	return 1 + 5 + len(v.Values)*maxWireValue + 1 + 5 + len(v.Statuses)*maxWireStatus + len(v.EventTimestamps)*maxWireStamp
}

// vector writes one FeatureVector. Its length comes first, so it saves as
// many bytes for it as the guess of its size needs and, if the true size
// needs fewer or more, moves the vector's fields once.
func (w *responseWriter) vector(v *featuredv1.FeatureVector) bool {
	if hasUnknown(v, offVector) {
		return false
	}
	guess := vectorGuess(v)
	w.reserve(guess)
	w.b = append(w.b, tagResponseResults)
	at := len(w.b)
	saved := protowire.SizeVarint(uint64(guess))
	w.b = w.b[:at+saved]
	for _, x := range v.Values {
		if !w.value(x) {
			return false
		}
	}
	if len(v.Statuses) > 0 { // proto3 omits an empty packed field
		w.b = append(w.b, tagVectorStatuses)
		w.b = protowire.AppendVarint(w.b, uint64(statusesSize(v.Statuses)))
		for _, st := range v.Statuses {
			if uint32(st) < 0x80 {
				w.b = append(w.b, byte(st))
			} else {
				w.b = protowire.AppendVarint(w.b, uint64(int64(st)))
			}
		}
	}
	for _, ts := range v.EventTimestamps {
		if ts == nil || hasUnknown(ts, offTimestamp) {
			return false
		}
		// A Timestamp is under 128 bytes: a one-byte length.
		w.b = append(w.b, tagVectorTimestamps, byte(timestampSize(ts)))
		if ts.Seconds != 0 {
			w.b = append(w.b, tagTimestampSeconds)
			w.b = protowire.AppendVarint(w.b, uint64(ts.Seconds))
		}
		if ts.Nanos != 0 {
			w.b = append(w.b, tagTimestampNanos)
			w.b = protowire.AppendVarint(w.b, uint64(int64(ts.Nanos)))
		}
	}
	size := len(w.b) - at - saved
	if need := protowire.SizeVarint(uint64(size)); need != saved {
		w.reserve(need - saved)
		body := w.b[at+saved:]
		w.b = w.b[:at+need+size]
		copy(w.b[at+need:], body)
	}
	protowire.AppendVarint(w.b[at:at], uint64(size))
	return true
}

// value writes v as field 1 (FeatureVector.values): its tag, its length and
// its fields (none for an unset kind).
func (w *responseWriter) value(v *featuredv1.Value) bool {
	if v == nil || hasUnknown(v, offValue) {
		return false
	}
	switch k := v.Kind.(type) {
	case nil:
		w.b = append(w.b, tagVectorValues, 0)
	case *featuredv1.Value_Int64Val:
		u := uint64(k.Int64Val)
		w.b = append(w.b, tagVectorValues, byte(1+protowire.SizeVarint(u)), tagValueInt64)
		w.b = protowire.AppendVarint(w.b, u)
	case *featuredv1.Value_DoubleVal:
		w.b = append(w.b, tagVectorValues, 1+8, tagValueDouble)
		w.b = binary.LittleEndian.AppendUint64(w.b, math.Float64bits(k.DoubleVal))
	case *featuredv1.Value_BoolVal:
		w.b = append(w.b, tagVectorValues, 1+1, tagValueBool, byte(protowire.EncodeBool(k.BoolVal)))
	case *featuredv1.Value_StringVal:
		if !utf8.ValidString(k.StringVal) {
			return false
		}
		w.reserve(len(k.StringVal))
		w.b = appendWireValue(w.b, v)
	case *featuredv1.Value_ListVal:
		s, ok := checkedValueSize(v)
		if !ok {
			return false
		}
		w.reserve(s)
		w.b = appendWireValue(w.b, v)
	default:
		return false // a kind added to value.proto that this file does not know
	}
	return true
}

func statusesSize(sts []featuredv1.FieldStatus) int {
	s := 0
	for _, st := range sts {
		if uint32(st) < 0x80 {
			s++
		} else {
			s += protowire.SizeVarint(uint64(int64(st)))
		}
	}
	return s
}

func timestampSize(ts *timestamppb.Timestamp) int {
	s := 0
	if ts.Seconds != 0 {
		s += 1 + protowire.SizeVarint(uint64(ts.Seconds))
	}
	if ts.Nanos != 0 {
		s += 1 + protowire.SizeVarint(uint64(int64(ts.Nanos)))
	}
	return s
}

// checkedValueSize is the size of v's fields, with the checks.
func checkedValueSize(v *featuredv1.Value) (int, bool) {
	if v == nil || hasUnknown(v, offValue) {
		return 0, false
	}
	switch k := v.Kind.(type) {
	case nil, *featuredv1.Value_Int64Val, *featuredv1.Value_DoubleVal, *featuredv1.Value_BoolVal:
		return valueSize(v), true
	case *featuredv1.Value_StringVal:
		return valueSize(v), utf8.ValidString(k.StringVal)
	case *featuredv1.Value_ListVal:
		l := k.ListVal
		if l == nil || hasUnknown(l, offValueList) {
			return 0, false
		}
		s := 0
		for _, e := range l.Val {
			es, ok := checkedValueSize(e)
			if !ok {
				return 0, false
			}
			s += 1 + protowire.SizeBytes(es)
		}
		return 1 + protowire.SizeBytes(s), true
	}
	return 0, false // a kind added to value.proto that this file does not know
}

// valueSize is the size of v's fields; checkedValueSize(v) returned ok.
func valueSize(v *featuredv1.Value) int {
	switch k := v.Kind.(type) {
	case *featuredv1.Value_Int64Val:
		return 1 + protowire.SizeVarint(uint64(k.Int64Val))
	case *featuredv1.Value_DoubleVal:
		return 1 + 8
	case *featuredv1.Value_StringVal:
		return 1 + protowire.SizeBytes(len(k.StringVal))
	case *featuredv1.Value_BoolVal:
		return 1 + 1
	case *featuredv1.Value_ListVal:
		return 1 + protowire.SizeBytes(listSize(k.ListVal))
	}
	return 0
}

func listSize(l *featuredv1.ValueList) int {
	s := 0
	for _, e := range l.Val {
		s += 1 + protowire.SizeBytes(valueSize(e))
	}
	return s
}

// appendWireValue appends v as field 1 (FeatureVector.values, ValueList.val):
// its tag, its length and its fields (none for an unset kind).
func appendWireValue(b []byte, v *featuredv1.Value) []byte {
	switch k := v.Kind.(type) {
	case *featuredv1.Value_Int64Val:
		u := uint64(k.Int64Val)
		b = append(b, tagVectorValues, byte(1+protowire.SizeVarint(u)), tagValueInt64)
		return protowire.AppendVarint(b, u)
	case *featuredv1.Value_DoubleVal:
		b = append(b, tagVectorValues, 1+8, tagValueDouble)
		return binary.LittleEndian.AppendUint64(b, math.Float64bits(k.DoubleVal))
	case *featuredv1.Value_StringVal:
		b = append(b, tagVectorValues)
		b = protowire.AppendVarint(b, uint64(1+protowire.SizeBytes(len(k.StringVal))))
		b = append(b, tagValueString)
		return protowire.AppendString(b, k.StringVal)
	case *featuredv1.Value_BoolVal:
		return append(b, tagVectorValues, 1+1, tagValueBool, byte(protowire.EncodeBool(k.BoolVal)))
	case *featuredv1.Value_ListVal:
		s := listSize(k.ListVal)
		b = append(b, tagVectorValues)
		b = protowire.AppendVarint(b, uint64(1+protowire.SizeBytes(s)))
		b = append(b, tagValueList)
		b = protowire.AppendVarint(b, uint64(s))
		for _, e := range k.ListVal.Val {
			b = appendWireValue(b, e)
		}
		return b
	}
	return append(b, tagVectorValues, 0)
}

// hasUnknown says whether m has unknown fields. It is asked once per
// message, so once per cell: it reads the generated struct's unknownFields
// field directly, at the offset off that reflection found when the package
// was loaded. m.ProtoReflect().GetUnknown() would cost an atomic pointer
// store (a message's first ProtoReflect caches its type there) with its GC
// write barrier, and a call through a function pointer. If the field is not
// where expected (off is 0: a protobuf-go whose generated code lays
// messages out otherwise), it asks ProtoReflect.
func hasUnknown[T any, M interface {
	*T
	protoreflect.ProtoMessage
}](m M, off uintptr) bool {
	if off == 0 {
		return len(m.ProtoReflect().GetUnknown()) > 0
	}
	return len(*(*[]byte)(unsafe.Add(unsafe.Pointer(m), off))) > 0
}

var (
	offResponse    = unknownFieldsOffset[featuredv1.GetOnlineFeaturesResponse]()
	offMetadata    = unknownFieldsOffset[featuredv1.GetOnlineFeaturesResponseMetadata]()
	offFeatureList = unknownFieldsOffset[featuredv1.FeatureList]()
	offVector      = unknownFieldsOffset[featuredv1.FeatureVector]()
	offValue       = unknownFieldsOffset[featuredv1.Value]()
	offValueList   = unknownFieldsOffset[featuredv1.ValueList]()
	offTimestamp   = unknownFieldsOffset[timestamppb.Timestamp]()
)

// unknownFieldsOffset is the offset of the unknownFields field of a
// generated message struct, or 0 if it has no such field of type []byte.
// (It is never at offset 0: the message state comes first.)
func unknownFieldsOffset[T any]() uintptr {
	f, ok := reflect.TypeFor[T]().FieldByName("unknownFields")
	if !ok || f.Type != reflect.TypeFor[[]byte]() {
		return 0
	}
	return f.Offset
}
