package serving

import (
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/featured-dev/featured/aggregate"
	featuredv1 "github.com/featured-dev/featured/api/featured/v1"
)

// newResponse builds the GetOnlineFeaturesResponse of a lookup: a real
// message, so that interceptors, in-process callers and reflection see its
// fields. It is column-major like the Feast JSON response: results[0] is the
// join key column (the keys as sent, PRESENT, empty timestamps), then one
// column per feature with its values, statuses and event times (none for
// NOT_FOUND or a zero time). out holds the results row-major: out[e*nf+c].
//
// Every message of one type comes from one backing array (a response of n
// entities and nf features allocates a fixed number of times, not per
// value); the arrays are never grown, so the pointers into them stay valid.
// The message outlives the request and is not pooled. codec.go writes it.
//
// bound is an upper bound of the message's encoded size, for the
// response-byte limit: a fixed worst case per cell (maxCellBytes) plus the
// bytes of names, strings and lists.
func newResponse(p *plan, req *lookupRequest, out []aggregate.Result) (_ *featuredv1.GetOnlineFeaturesResponse, bound int) {
	n := len(req.values)
	nf := len(p.names)
	cells := n * (nf + 1)

	names := make([]string, 0, nf+1)
	names = append(names, p.joinKey)
	names = append(names, p.names...)
	bound = 16 + cells*maxCellBytes + (nf+1)*maxVectorHeaderBytes
	for _, name := range names {
		bound += len(name) + 6
	}
	resp := &featuredv1.GetOnlineFeaturesResponse{
		Metadata: &featuredv1.GetOnlineFeaturesResponseMetadata{FeatureNames: &featuredv1.FeatureList{Val: names}},
		Results:  make([]*featuredv1.FeatureVector, nf+1),
	}
	vectors := make([]featuredv1.FeatureVector, nf+1)
	values := make([]featuredv1.Value, cells)
	stamps := make([]timestamppb.Timestamp, cells)
	valuePtrs := make([]*featuredv1.Value, cells)
	stampPtrs := make([]*timestamppb.Timestamp, cells)
	statuses := make([]featuredv1.FieldStatus, cells)
	for i := range values {
		valuePtrs[i], stampPtrs[i] = &values[i], &stamps[i]
	}
	var kinds oneofs
	for c := range vectors {
		v := &vectors[c]
		lo, hi := c*n, (c+1)*n
		// Three-index slices: appending to one column cannot overwrite the next.
		v.Values, v.Statuses, v.EventTimestamps = valuePtrs[lo:hi:hi], statuses[lo:hi:hi], stampPtrs[lo:hi:hi]
		resp.Results[c] = v
	}

	keys := &vectors[0]
	for e := range req.values {
		ev := &req.values[e]
		if ev.isInt {
			keys.Values[e].Kind = kinds.int64(ev.i, cells)
		} else {
			keys.Values[e].Kind = kinds.string(string(req.str(ev.s)), cells)
			bound += len(req.str(ev.s))
		}
		keys.Statuses[e] = featuredv1.FieldStatus_PRESENT
	}
	for c := 0; c < nf; c++ {
		col := &vectors[c+1]
		for e := 0; e < n; e++ {
			r := &out[e*nf+c]
			st := statusOf(r)
			if st == statusPresent {
				kinds.set(col.Values[e], &r.Value, cells)
				switch r.Value.Kind {
				case aggregate.KindString:
					bound += len(r.Value.S)
				case aggregate.KindList:
					bound += proto.Size(col.Values[e]) + 6
				}
			}
			col.Statuses[e] = featuredv1.FieldStatus(st)
			if r.Status != aggregate.StatusNotFound && r.EventMillis != 0 {
				ts := col.EventTimestamps[e]
				ts.Seconds, ts.Nanos = r.EventMillis/1000, int32(r.EventMillis%1000)*1e6
				if ts.Nanos < 0 {
					ts.Seconds--
					ts.Nanos += 1e9
				}
			}
		}
	}
	return resp, bound
}

// Worst cases of one cell's encoding without its string or list bytes: the
// Value (tag, length, a tag and a 10-byte varint; a string's length varint
// is counted here too), its packed status (a small enum, one byte) and its
// Timestamp (tag, length, seconds and nanos varints); and of one vector's
// own tags and lengths.
const (
	maxCellBytes         = (1 + 5 + 1 + 10) + 1 + (1 + 5 + 1 + 10 + 1 + 5)
	maxVectorHeaderBytes = 1 + 5 + 1 + 5
)

// oneofs hands out the oneof wrappers of Value from backing arrays made on
// first use with room for every cell of the response (max), so that they
// never grow and pointers into them stay valid.
type oneofs struct {
	ints    []featuredv1.Value_Int64Val
	doubles []featuredv1.Value_DoubleVal
	strs    []featuredv1.Value_StringVal
}

func (o *oneofs) int64(i int64, max int) *featuredv1.Value_Int64Val {
	if o.ints == nil {
		o.ints = make([]featuredv1.Value_Int64Val, 0, max)
	}
	o.ints = append(o.ints, featuredv1.Value_Int64Val{Int64Val: i})
	return &o.ints[len(o.ints)-1]
}

func (o *oneofs) double(f float64, max int) *featuredv1.Value_DoubleVal {
	if o.doubles == nil {
		o.doubles = make([]featuredv1.Value_DoubleVal, 0, max)
	}
	o.doubles = append(o.doubles, featuredv1.Value_DoubleVal{DoubleVal: f})
	return &o.doubles[len(o.doubles)-1]
}

func (o *oneofs) string(s string, max int) *featuredv1.Value_StringVal {
	if o.strs == nil {
		o.strs = make([]featuredv1.Value_StringVal, 0, max)
	}
	o.strs = append(o.strs, featuredv1.Value_StringVal{StringVal: s})
	return &o.strs[len(o.strs)-1]
}

// set sets v to a (a null leaves v unset). Lists, rare and of any length,
// allocate their own messages.
func (o *oneofs) set(v *featuredv1.Value, a *aggregate.Value, max int) {
	switch a.Kind {
	case aggregate.KindInt64:
		v.Kind = o.int64(a.I, max)
	case aggregate.KindFloat64:
		v.Kind = o.double(a.F, max)
	case aggregate.KindString:
		v.Kind = o.string(a.S, max)
	case aggregate.KindBool:
		v.Kind = &featuredv1.Value_BoolVal{BoolVal: a.I != 0}
	case aggregate.KindList:
		l := &featuredv1.ValueList{Val: make([]*featuredv1.Value, len(a.L))}
		elems := make([]featuredv1.Value, len(a.L))
		for i := range a.L {
			l.Val[i] = &elems[i]
			setListElem(l.Val[i], &a.L[i])
		}
		v.Kind = &featuredv1.Value_ListVal{ListVal: l}
	}
}

func setListElem(v *featuredv1.Value, a *aggregate.Value) {
	switch a.Kind {
	case aggregate.KindInt64:
		v.Kind = &featuredv1.Value_Int64Val{Int64Val: a.I}
	case aggregate.KindFloat64:
		v.Kind = &featuredv1.Value_DoubleVal{DoubleVal: a.F}
	case aggregate.KindString:
		v.Kind = &featuredv1.Value_StringVal{StringVal: a.S}
	case aggregate.KindBool:
		v.Kind = &featuredv1.Value_BoolVal{BoolVal: a.I != 0}
	case aggregate.KindList:
		l := &featuredv1.ValueList{Val: make([]*featuredv1.Value, len(a.L))}
		for i := range a.L {
			l.Val[i] = &featuredv1.Value{}
			setListElem(l.Val[i], &a.L[i])
		}
		v.Kind = &featuredv1.Value_ListVal{ListVal: l}
	}
}
