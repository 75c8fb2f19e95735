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
// Every message of one type comes from one or two backing arrays (a
// response of n entities and nf features allocates a fixed number of times,
// not per value); the arrays are never grown, so the pointers into them stay
// valid. The message outlives the request and is not pooled. codec.go
// writes it.
//
// Cells share messages where they are equal, which proto.Marshal, proto.Equal
// and every reader accept: every unset value (a null, NOT_FOUND or invalid
// cell) points to one empty Value, every empty timestamp to one empty
// Timestamp, and cells of equal event time mostly to one Timestamp (features
// of one view read in one lookup carry one time). The response is therefore
// read-only: a caller that changes a value in place changes every cell that
// shares it, so it proto.Clones the message first.
//
// bound is an upper bound of the message's encoded size, for the
// response-byte limit: a fixed worst case per cell (maxCellBytes) plus the
// bytes of names, strings and lists.
func newResponse(p *plan, req *lookupRequest, out []aggregate.Result) (_ *featuredv1.GetOnlineFeaturesResponse, bound int) {
	n := len(req.values)
	nf := len(p.names)
	// The key columns first: one, or one per join key of a compound key.
	nk := max(1, len(p.joinKeys))
	cells := n * (nf + nk)

	names := make([]string, 0, nf+nk)
	if nk == 1 {
		names = append(names, p.joinKey)
	} else {
		for j := range p.joinKeys {
			names = append(names, p.joinKeys[j].joinKey)
		}
	}
	names = append(names, p.names...)
	bound = 16 + cells*maxCellBytes + (nf+nk)*maxVectorHeaderBytes
	for _, name := range names {
		bound += len(name) + 6
	}
	// The response's three singular messages in one allocation.
	head := &struct {
		resp  featuredv1.GetOnlineFeaturesResponse
		md    featuredv1.GetOnlineFeaturesResponseMetadata
		names featuredv1.FeatureList
	}{}
	resp := &head.resp
	head.names.Val = names
	head.md.FeatureNames = &head.names
	resp.Metadata = &head.md
	resp.Results = make([]*featuredv1.FeatureVector, nf+nk)
	// The statuses and the timestamps first, reading the results in their
	// row-major order; the count of present values sizes the Value array.
	// Each pointer is stored once: while the GC marks, every store of a
	// pointer costs a write barrier.
	statuses := make([]featuredv1.FieldStatus, cells)
	stampPtrs := make([]*timestamppb.Timestamp, cells)
	stamps := stampArena{left: 1 + n*nf}
	empty := stamps.empty()
	set := 0 // the present values
	for e := 0; e < n; e++ {
		for j := 0; j < nk; j++ {
			statuses[j*n+e], stampPtrs[j*n+e] = featuredv1.FieldStatus_PRESENT, empty // the key
		}
		row := out[e*nf : (e+1)*nf]
		for c := range row {
			r := &row[c]
			st := statusOf(r)
			if st == statusPresent {
				set++
			}
			ts := empty
			if r.Status != aggregate.StatusNotFound && r.EventMillis != 0 {
				ts = stamps.at(r.EventMillis)
			}
			statuses[(c+nk)*n+e], stampPtrs[(c+nk)*n+e] = featuredv1.FieldStatus(st), ts
		}
	}
	vectors := make([]featuredv1.FeatureVector, nf+nk)
	values := make([]featuredv1.Value, nk*n+set+1) // the last one is the shared empty Value
	valuePtrs := make([]*featuredv1.Value, cells)
	unset := &values[len(values)-1]
	for c := range vectors {
		v := &vectors[c]
		lo, hi := c*n, (c+1)*n
		// Three-index slices: appending to one column cannot overwrite the next.
		v.Values, v.Statuses, v.EventTimestamps = valuePtrs[lo:hi:hi], statuses[lo:hi:hi], stampPtrs[lo:hi:hi]
		resp.Results[c] = v
	}

	var kinds oneofs
	for j := 0; j < nk; j++ {
		keys := &vectors[j]
		kcol := req.values
		if nk > 1 {
			kcol = req.col(req.keyOf[j])
		}
		for e := range kcol {
			ev := &kcol[e]
			x := &values[j*n+e]
			if ev.isInt {
				x.Kind = kinds.int64(ev.i, nk*n+set)
			} else {
				x.Kind = kinds.string(string(req.str(ev.s)), nk*n+set)
				bound += len(req.str(ev.s))
			}
			keys.Values[e] = x
		}
	}
	next := nk * n // the next free element of values
	for c := 0; c < nf; c++ {
		col := &vectors[c+nk]
		for e := 0; e < n; e++ {
			x := unset
			if col.Statuses[e] == featuredv1.FieldStatus_PRESENT {
				r := &out[e*nf+c]
				x = &values[next]
				next++
				kinds.set(x, &r.Value, nk*n+set)
				switch r.Value.Kind {
				case aggregate.KindString:
					bound += len(r.Value.S)
				case aggregate.KindList:
					bound += proto.Size(x) + 6
				}
			}
			col.Values[e] = x
		}
	}
	return resp, bound
}

// stampArena hands out the Timestamps of one response. Equal times share
// one message, found in a small direct-mapped cache (a miss costs a message,
// never a wrong time). Its backing arrays are at most two: the first sized
// for the common case, the second, if that fills, for every request left.
type stampArena struct {
	free  []timestamppb.Timestamp
	left  int // the calls of empty and at still to come after the current one
	cache [64]struct {
		millis int64
		ts     *timestamppb.Timestamp
	}
}

// new is a zero Timestamp for the current call of empty or at.
func (a *stampArena) new() *timestamppb.Timestamp {
	if len(a.free) == cap(a.free) {
		size := a.left + 1 // this call and those to come
		if a.free == nil {
			size = min(size, 16)
		}
		a.free = make([]timestamppb.Timestamp, 0, size)
	}
	a.free = a.free[:len(a.free)+1]
	return &a.free[len(a.free)-1]
}

// empty is the response's one empty Timestamp.
func (a *stampArena) empty() *timestamppb.Timestamp {
	a.left--
	return a.new()
}

// at is the Timestamp of a time in Unix milliseconds (not 0).
func (a *stampArena) at(millis int64) *timestamppb.Timestamp {
	a.left--
	slot := &a.cache[uint64(millis)*0x9e3779b97f4a7c15>>58]
	if slot.millis == millis && slot.ts != nil {
		return slot.ts
	}
	ts := a.new()
	ts.Seconds, ts.Nanos = millis/1000, int32(millis%1000)*1e6
	if ts.Nanos < 0 {
		ts.Seconds--
		ts.Nanos += 1e9
	}
	slot.millis, slot.ts = millis, ts
	return ts
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
