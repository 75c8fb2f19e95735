package serving

import (
	"math"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/featured-dev/featured/aggregate"
)

// Field numbers of api/featured/v1 (serving.proto, value.proto) that the
// wire encoder below writes. TestWireResponseMatchesProto checks the
// encoder against proto.Marshal of responseToProto on random results, so a
// change to the protos that this file misses fails there.
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

// wireEncoder writes a GetOnlineFeaturesResponse in the protobuf wire format
// straight from the lookup's results, as encode.go does for JSON: no
// message per value, no reflection. The gRPC handler hands the bytes to
// grpc-go as the unknown fields of an empty response, which proto.Marshal
// copies verbatim and every client decodes as the known fields they are.
type wireEncoder struct {
	// limit, when positive, stops appendResponse after the first column
	// that takes the response past limit bytes; the caller then refuses
	// the response by its length.
	limit int

	col []byte // one FeatureVector
	val []byte // one Value
	st  []byte // packed statuses
}

func (w *wireEncoder) appendResponse(b []byte, p *plan, req *lookupRequest, out []aggregate.Result) []byte {
	n := len(req.values)
	nf := len(p.names)

	// metadata { feature_names { val: join key, names... } }
	names := 0
	names += protowire.SizeTag(fListVal) + protowire.SizeBytes(len(p.joinKey))
	for _, name := range p.names {
		names += protowire.SizeTag(fListVal) + protowire.SizeBytes(len(name))
	}
	meta := protowire.SizeTag(fMetadataNames) + protowire.SizeBytes(names)
	b = protowire.AppendTag(b, fResponseMetadata, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(meta))
	b = protowire.AppendTag(b, fMetadataNames, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(names))
	b = protowire.AppendTag(b, fListVal, protowire.BytesType)
	b = protowire.AppendString(b, p.joinKey)
	for _, name := range p.names {
		b = protowire.AppendTag(b, fListVal, protowire.BytesType)
		b = protowire.AppendString(b, name)
	}

	// The join key column: the keys, PRESENT, empty timestamps.
	w.col, w.st = w.col[:0], w.st[:0]
	for e := range req.values {
		ev := &req.values[e]
		w.val = w.val[:0]
		if ev.isInt {
			w.val = protowire.AppendTag(w.val, fValueInt64, protowire.VarintType)
			w.val = protowire.AppendVarint(w.val, uint64(ev.i))
		} else {
			w.val = protowire.AppendTag(w.val, fValueString, protowire.BytesType)
			w.val = protowire.AppendBytes(w.val, req.str(ev.s))
		}
		w.col = protowire.AppendTag(w.col, fVectorValues, protowire.BytesType)
		w.col = protowire.AppendBytes(w.col, w.val)
		w.st = protowire.AppendVarint(w.st, uint64(statusPresent))
	}
	b = w.appendVector(b, n, nil, 0)

	for c := 0; c < nf; c++ {
		w.col, w.st = w.col[:0], w.st[:0]
		for e := 0; e < n; e++ {
			r := &out[e*nf+c]
			st := statusOf(r)
			w.val = w.val[:0]
			if st == statusPresent {
				w.val = appendWireValue(w.val, &r.Value)
			}
			w.col = protowire.AppendTag(w.col, fVectorValues, protowire.BytesType)
			w.col = protowire.AppendBytes(w.col, w.val)
			w.st = protowire.AppendVarint(w.st, uint64(st))
		}
		b = w.appendVector(b, n, out[c:], nf)
		if w.limit > 0 && len(b) > w.limit {
			return b
		}
	}
	return b
}

// appendVector appends one FeatureVector from w.col (its values) and w.st
// (its statuses), with n timestamps: empty for the key column (stamps nil),
// else those of stamps[e*nf] for entity e, as responseToProto sets them.
func (w *wireEncoder) appendVector(b []byte, n int, stamps []aggregate.Result, nf int) []byte {
	size := len(w.col)
	if len(w.st) > 0 { // proto3 omits an empty packed field
		size += protowire.SizeTag(fVectorStatuses) + protowire.SizeBytes(len(w.st))
	}
	tsSize := func(e int) int {
		sec, nanos, ok := stampOf(stamps, e, nf)
		if !ok {
			return 0
		}
		s := 0
		if sec != 0 {
			s += protowire.SizeTag(fTimestampSeconds) + protowire.SizeVarint(uint64(sec))
		}
		if nanos != 0 {
			s += protowire.SizeTag(fTimestampNanos) + protowire.SizeVarint(uint64(int64(nanos)))
		}
		return s
	}
	for e := 0; e < n; e++ {
		size += protowire.SizeTag(fVectorTimestamps) + protowire.SizeBytes(tsSize(e))
	}
	b = protowire.AppendTag(b, fResponseResults, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(size))
	b = append(b, w.col...)
	if len(w.st) > 0 {
		b = protowire.AppendTag(b, fVectorStatuses, protowire.BytesType)
		b = protowire.AppendBytes(b, w.st)
	}
	for e := 0; e < n; e++ {
		b = protowire.AppendTag(b, fVectorTimestamps, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(tsSize(e)))
		if sec, nanos, ok := stampOf(stamps, e, nf); ok {
			if sec != 0 {
				b = protowire.AppendTag(b, fTimestampSeconds, protowire.VarintType)
				b = protowire.AppendVarint(b, uint64(sec))
			}
			if nanos != 0 {
				b = protowire.AppendTag(b, fTimestampNanos, protowire.VarintType)
				b = protowire.AppendVarint(b, uint64(int64(nanos)))
			}
		}
	}
	return b
}

// stampOf is the timestamp responseToProto gives entity e's value: none for
// the key column or a NOT_FOUND / zero time.
func stampOf(stamps []aggregate.Result, e, nf int) (sec int64, nanos int32, ok bool) {
	if stamps == nil {
		return 0, 0, false
	}
	r := &stamps[e*nf]
	if r.Status == aggregate.StatusNotFound || r.EventMillis == 0 {
		return 0, 0, false
	}
	sec, nanos = r.EventMillis/1000, int32(r.EventMillis%1000)*1e6
	if nanos < 0 {
		sec--
		nanos += 1e9
	}
	return sec, nanos, true
}

// appendWireValue appends the fields of a Value message holding v (nothing
// for a null).
func appendWireValue(b []byte, v *aggregate.Value) []byte {
	switch v.Kind {
	case aggregate.KindInt64:
		b = protowire.AppendTag(b, fValueInt64, protowire.VarintType)
		return protowire.AppendVarint(b, uint64(v.I))
	case aggregate.KindFloat64:
		b = protowire.AppendTag(b, fValueDouble, protowire.Fixed64Type)
		return protowire.AppendFixed64(b, math.Float64bits(v.F))
	case aggregate.KindString:
		b = protowire.AppendTag(b, fValueString, protowire.BytesType)
		return protowire.AppendString(b, v.S)
	case aggregate.KindBool:
		b = protowire.AppendTag(b, fValueBool, protowire.VarintType)
		return protowire.AppendVarint(b, protowire.EncodeBool(v.I != 0))
	case aggregate.KindList:
		// ValueList { val: Value... }, each element a nested message.
		size := 0
		for i := range v.L {
			size += protowire.SizeTag(fListVal) + protowire.SizeBytes(wireValueSize(&v.L[i]))
		}
		b = protowire.AppendTag(b, fValueList, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(size))
		for i := range v.L {
			b = protowire.AppendTag(b, fListVal, protowire.BytesType)
			b = protowire.AppendVarint(b, uint64(wireValueSize(&v.L[i])))
			b = appendWireValue(b, &v.L[i])
		}
	}
	return b
}

func wireValueSize(v *aggregate.Value) int {
	switch v.Kind {
	case aggregate.KindInt64:
		return protowire.SizeTag(fValueInt64) + protowire.SizeVarint(uint64(v.I))
	case aggregate.KindFloat64:
		return protowire.SizeTag(fValueDouble) + protowire.SizeFixed64()
	case aggregate.KindString:
		return protowire.SizeTag(fValueString) + protowire.SizeBytes(len(v.S))
	case aggregate.KindBool:
		return protowire.SizeTag(fValueBool) + protowire.SizeVarint(protowire.EncodeBool(v.I != 0))
	case aggregate.KindList:
		size := 0
		for i := range v.L {
			size += protowire.SizeTag(fListVal) + protowire.SizeBytes(wireValueSize(&v.L[i]))
		}
		return protowire.SizeTag(fValueList) + protowire.SizeBytes(size)
	}
	return 0
}
