package serving

import (
	"math"
	"unicode/utf8"

	"google.golang.org/grpc/encoding"
	protocodec "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/types/known/timestamppb"

	featuredv1 "github.com/featured-dev/featured/api/featured/v1"
)

// codec is grpc-go's "proto" codec with one fast path: a
// GetOnlineFeaturesResponse, the only large message featured sends, is
// written by the hand-written encoder below (no reflection, sizes computed
// in one pass over plain fields) instead of proto.Marshal. Its output is
// byte for byte what proto.Marshal writes (TestCodecMatchesProtoMarshal);
// a message the encoder does not handle exactly (unknown fields, nil
// elements in a repeated field) and every other message, and every
// Unmarshal, go to grpc-go's codec.
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
		if size, ok := responseSize(m); ok {
			if mem.IsBelowBufferPoolingThreshold(size) {
				return mem.BufferSlice{mem.SliceBuffer(appendResponse(make([]byte, 0, size), m))}, nil
			}
			pool := mem.DefaultBufferPool()
			buf := pool.Get(size)
			*buf = appendResponse((*buf)[:0], m)
			return mem.BufferSlice{mem.NewBuffer(buf, pool)}, nil
		}
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

// The sizes below return ok=false for what appendResponse does not write
// exactly as proto.Marshal would: unknown fields (only a message decoded
// from a newer peer has them), nil elements of repeated message fields and
// strings that are not valid UTF-8 (which proto.Marshal refuses for a proto3
// string). The caller then falls back to proto.Marshal.

func responseSize(m *featuredv1.GetOnlineFeaturesResponse) (int, bool) {
	if len(m.ProtoReflect().GetUnknown()) > 0 {
		return 0, false
	}
	size := 0
	if md := m.Metadata; md != nil {
		s, ok := metadataSize(md)
		if !ok {
			return 0, false
		}
		size += protowire.SizeTag(fResponseMetadata) + protowire.SizeBytes(s)
	}
	for _, v := range m.Results {
		if v == nil {
			return 0, false
		}
		s, ok := vectorSize(v)
		if !ok {
			return 0, false
		}
		size += protowire.SizeTag(fResponseResults) + protowire.SizeBytes(s)
	}
	return size, true
}

func metadataSize(md *featuredv1.GetOnlineFeaturesResponseMetadata) (int, bool) {
	if len(md.ProtoReflect().GetUnknown()) > 0 {
		return 0, false
	}
	if md.FeatureNames == nil {
		return 0, true
	}
	if len(md.FeatureNames.ProtoReflect().GetUnknown()) > 0 {
		return 0, false
	}
	for _, name := range md.FeatureNames.Val {
		if !utf8.ValidString(name) {
			return 0, false
		}
	}
	return protowire.SizeTag(fMetadataNames) + protowire.SizeBytes(namesSize(md.FeatureNames)), true
}

func namesSize(l *featuredv1.FeatureList) int {
	s := 0
	for _, name := range l.Val {
		s += protowire.SizeTag(fListVal) + protowire.SizeBytes(len(name))
	}
	return s
}

// vectorSize checks v's values and timestamps for unknown fields, once per
// message; appendVector, which sizes them again, need not.
func vectorSize(v *featuredv1.FeatureVector) (int, bool) {
	if len(v.ProtoReflect().GetUnknown()) > 0 {
		return 0, false
	}
	size := 0
	for _, x := range v.Values {
		if x == nil {
			return 0, false
		}
		s, ok := valueSize(x, true)
		if !ok {
			return 0, false
		}
		size += protowire.SizeTag(fVectorValues) + protowire.SizeBytes(s)
	}
	if len(v.Statuses) > 0 { // proto3 omits an empty packed field
		size += protowire.SizeTag(fVectorStatuses) + protowire.SizeBytes(statusesSize(v.Statuses))
	}
	for _, ts := range v.EventTimestamps {
		if ts == nil || len(ts.ProtoReflect().GetUnknown()) > 0 {
			return 0, false
		}
		size += protowire.SizeTag(fVectorTimestamps) + protowire.SizeBytes(timestampSize(ts))
	}
	return size, true
}

func statusesSize(sts []featuredv1.FieldStatus) int {
	s := 0
	for _, st := range sts {
		s += protowire.SizeVarint(uint64(int64(st)))
	}
	return s
}

func timestampSize(ts *timestamppb.Timestamp) int {
	s := 0
	if ts.Seconds != 0 {
		s += protowire.SizeTag(fTimestampSeconds) + protowire.SizeVarint(uint64(ts.Seconds))
	}
	if ts.Nanos != 0 {
		s += protowire.SizeTag(fTimestampNanos) + protowire.SizeVarint(uint64(int64(ts.Nanos)))
	}
	return s
}

// valueSize is the size of v's fields. check asks for the unknown-field
// and nil checks (the first, sizing pass).
func valueSize(v *featuredv1.Value, check bool) (int, bool) {
	switch k := v.Kind.(type) {
	case nil:
	case *featuredv1.Value_Int64Val:
		return protowire.SizeTag(fValueInt64) + protowire.SizeVarint(uint64(k.Int64Val)), !check || len(v.ProtoReflect().GetUnknown()) == 0
	case *featuredv1.Value_DoubleVal:
		return protowire.SizeTag(fValueDouble) + protowire.SizeFixed64(), !check || len(v.ProtoReflect().GetUnknown()) == 0
	case *featuredv1.Value_StringVal:
		return protowire.SizeTag(fValueString) + protowire.SizeBytes(len(k.StringVal)),
			!check || (utf8.ValidString(k.StringVal) && len(v.ProtoReflect().GetUnknown()) == 0)
	case *featuredv1.Value_BoolVal:
		return protowire.SizeTag(fValueBool) + protowire.SizeVarint(protowire.EncodeBool(k.BoolVal)), !check || len(v.ProtoReflect().GetUnknown()) == 0
	case *featuredv1.Value_ListVal:
		if k.ListVal == nil || (check && len(k.ListVal.ProtoReflect().GetUnknown()) > 0) {
			return 0, false
		}
		s, ok := listSize(k.ListVal, check)
		return protowire.SizeTag(fValueList) + protowire.SizeBytes(s), ok && (!check || len(v.ProtoReflect().GetUnknown()) == 0)
	default:
		return 0, false // a kind added to value.proto that this file does not know
	}
	return 0, !check || len(v.ProtoReflect().GetUnknown()) == 0
}

func listSize(l *featuredv1.ValueList, check bool) (int, bool) {
	s := 0
	for _, e := range l.Val {
		if e == nil {
			return 0, false
		}
		es, ok := valueSize(e, check)
		if !ok {
			return 0, false
		}
		s += protowire.SizeTag(fListVal) + protowire.SizeBytes(es)
	}
	return s, true
}

// appendResponse appends m's wire encoding; responseSize(m) must have
// returned ok.
func appendResponse(b []byte, m *featuredv1.GetOnlineFeaturesResponse) []byte {
	if md := m.Metadata; md != nil {
		s, _ := metadataSize(md)
		b = protowire.AppendTag(b, fResponseMetadata, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(s))
		if l := md.FeatureNames; l != nil {
			b = protowire.AppendTag(b, fMetadataNames, protowire.BytesType)
			b = protowire.AppendVarint(b, uint64(namesSize(l)))
			for _, name := range l.Val {
				b = protowire.AppendTag(b, fListVal, protowire.BytesType)
				b = protowire.AppendString(b, name)
			}
		}
	}
	for _, v := range m.Results {
		b = appendVector(b, v)
	}
	return b
}

func appendVector(b []byte, v *featuredv1.FeatureVector) []byte {
	// The vector's size, as vectorSize computes it, without its checks.
	size, stSize := 0, 0
	for _, x := range v.Values {
		s, _ := valueSize(x, false)
		size += protowire.SizeTag(fVectorValues) + protowire.SizeBytes(s)
	}
	if len(v.Statuses) > 0 {
		stSize = statusesSize(v.Statuses)
		size += protowire.SizeTag(fVectorStatuses) + protowire.SizeBytes(stSize)
	}
	for _, ts := range v.EventTimestamps {
		size += protowire.SizeTag(fVectorTimestamps) + protowire.SizeBytes(timestampSize(ts))
	}

	b = protowire.AppendTag(b, fResponseResults, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(size))
	for _, x := range v.Values {
		s, _ := valueSize(x, false)
		b = protowire.AppendTag(b, fVectorValues, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(s))
		b = appendWireValue(b, x)
	}
	if len(v.Statuses) > 0 {
		b = protowire.AppendTag(b, fVectorStatuses, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(stSize))
		for _, st := range v.Statuses {
			b = protowire.AppendVarint(b, uint64(int64(st)))
		}
	}
	for _, ts := range v.EventTimestamps {
		b = protowire.AppendTag(b, fVectorTimestamps, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(timestampSize(ts)))
		if ts.Seconds != 0 {
			b = protowire.AppendTag(b, fTimestampSeconds, protowire.VarintType)
			b = protowire.AppendVarint(b, uint64(ts.Seconds))
		}
		if ts.Nanos != 0 {
			b = protowire.AppendTag(b, fTimestampNanos, protowire.VarintType)
			b = protowire.AppendVarint(b, uint64(int64(ts.Nanos)))
		}
	}
	return b
}

// appendWireValue appends the fields of v (nothing for an unset kind).
func appendWireValue(b []byte, v *featuredv1.Value) []byte {
	switch k := v.Kind.(type) {
	case *featuredv1.Value_Int64Val:
		b = protowire.AppendTag(b, fValueInt64, protowire.VarintType)
		return protowire.AppendVarint(b, uint64(k.Int64Val))
	case *featuredv1.Value_DoubleVal:
		b = protowire.AppendTag(b, fValueDouble, protowire.Fixed64Type)
		return protowire.AppendFixed64(b, math.Float64bits(k.DoubleVal))
	case *featuredv1.Value_StringVal:
		b = protowire.AppendTag(b, fValueString, protowire.BytesType)
		return protowire.AppendString(b, k.StringVal)
	case *featuredv1.Value_BoolVal:
		b = protowire.AppendTag(b, fValueBool, protowire.VarintType)
		return protowire.AppendVarint(b, protowire.EncodeBool(k.BoolVal))
	case *featuredv1.Value_ListVal:
		s, _ := listSize(k.ListVal, false)
		b = protowire.AppendTag(b, fValueList, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(s))
		for _, e := range k.ListVal.Val {
			es, _ := valueSize(e, false)
			b = protowire.AppendTag(b, fListVal, protowire.BytesType)
			b = protowire.AppendVarint(b, uint64(es))
			b = appendWireValue(b, e)
		}
	}
	return b
}
