package codec

import (
	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/featured-dev/featured/aggregate"
)

// TimestampMS is the Arrow type of every time column the offline tree
// writes: milliseconds, UTC.
var TimestampMS = &arrow.TimestampType{Unit: arrow.Millisecond, TimeZone: "UTC"}

// ArrowType is the Arrow type of a value kind (lists are last_k results).
func ArrowType(k, elem aggregate.Kind) arrow.DataType {
	switch k {
	case aggregate.KindInt64:
		return arrow.PrimitiveTypes.Int64
	case aggregate.KindFloat64:
		return arrow.PrimitiveTypes.Float64
	case aggregate.KindString:
		return arrow.BinaryTypes.String
	case aggregate.KindBool:
		return arrow.FixedWidthTypes.Boolean
	case aggregate.KindList:
		return arrow.ListOf(ArrowType(elem, aggregate.KindNull))
	}
	return arrow.Null
}

// AppendArrow appends v to b (an Arrow builder of v's declared kind); a
// value of another kind is null.
func AppendArrow(b array.Builder, v aggregate.Value) {
	switch b := b.(type) {
	case *array.Int64Builder:
		if v.Kind == aggregate.KindInt64 {
			b.Append(v.I)
			return
		}
	case *array.Float64Builder:
		if v.Kind == aggregate.KindFloat64 {
			b.Append(v.F)
			return
		}
	case *array.StringBuilder:
		if v.Kind == aggregate.KindString {
			b.Append(v.S)
			return
		}
	case *array.BooleanBuilder:
		if v.Kind == aggregate.KindBool {
			b.Append(v.I != 0)
			return
		}
	case *array.ListBuilder:
		if v.Kind == aggregate.KindList {
			b.Append(true)
			for _, e := range v.L {
				AppendArrow(b.ValueBuilder(), e)
			}
			return
		}
	}
	b.AppendNull()
}

// ValueAt reads element i of a primitive Arrow array as a Value.
func ValueAt(a arrow.Array, i int) aggregate.Value {
	if a.IsNull(i) {
		return aggregate.Value{}
	}
	switch a := a.(type) {
	case *array.Int64:
		return aggregate.Value{Kind: aggregate.KindInt64, I: a.Value(i)}
	case *array.Float64:
		return aggregate.Value{Kind: aggregate.KindFloat64, F: a.Value(i)}
	case *array.String:
		return aggregate.Value{Kind: aggregate.KindString, S: a.Value(i)}
	case *array.Boolean:
		v := aggregate.Value{Kind: aggregate.KindBool}
		if a.Value(i) {
			v.I = 1
		}
		return v
	}
	return aggregate.Value{}
}
