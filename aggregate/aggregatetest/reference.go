package aggregatetest

import (
	"math"
	"math/big"
	"sort"

	"github.com/featured-dev/featured/aggregate"
)

// Event is one raw event: its event time and its fields, indexed by
// aggregate.Spec.Field. A slice of Events is in arrival order.
type Event struct {
	Millis int64
	Fields []aggregate.Value
}

// Reference computes feature of a view (specs, ttlMillis) as of atMillis by
// brute force over events (arrival order), following the definition in
// package aggregate's documentation rather than its tiles:
//
//   - The TTL reset rule runs over the whole arrival sequence: an event
//     later than the latest event so far plus ttlMillis discards everything
//     before it.
//   - No surviving event, or a latest event older than atMillis - ttlMillis:
//     StatusNotFound.
//   - Only surviving events with time <= atMillis and, for a window W with
//     hop h, time >= floor((atMillis - W)/h)*h are aggregated, directly and
//     in arrival order.
//
// Reads before the latest event differ from aggregate's by design (its head
// is exact to the tile only); compare at times >= the latest event. Floats
// are summed in arrival order, so compare them with a tolerance (Equal).
// count_distinct counts distinct values exactly up to the bound and reports
// aggregate.EstimateDistinct of the distinct values' hashes beyond it, which
// is exactly what aggregate reports there.
func Reference(specs []aggregate.Spec, ttlMillis int64, events []Event, feature int, atMillis int64) aggregate.Result {
	from := 0 // events before from were discarded by a reset
	var latest int64
	for i, e := range events {
		if i > from && e.Millis > latest && uint64(e.Millis-latest) > uint64(ttlMillis) {
			from = i
		}
		if i == from || e.Millis > latest {
			latest = e.Millis
		}
	}
	live := events[from:]
	if len(live) == 0 || (atMillis > latest && uint64(atMillis-latest) > uint64(ttlMillis)) {
		return aggregate.Result{Status: aggregate.StatusNotFound}
	}
	sp := specs[feature]
	lo := int64(math.MinInt64)
	if sp.WindowMillis > 0 {
		lo = floorDiv(atMillis-sp.WindowMillis, sp.HopMillis) * sp.HopMillis
	}
	type sample struct {
		t int64
		v aggregate.Value
	}
	xs := make([]sample, 0, len(live))
	for _, e := range live {
		if e.Millis > atMillis || e.Millis < lo {
			continue
		}
		var v aggregate.Value
		if sp.Field >= 0 {
			if sp.Field >= len(e.Fields) || e.Fields[sp.Field].Kind != sp.FieldKind {
				continue
			}
			v = e.Fields[sp.Field]
		}
		xs = append(xs, sample{e.Millis, v})
	}
	present := func(v aggregate.Value) aggregate.Result {
		return aggregate.Result{Value: v, Status: aggregate.StatusPresent, EventMillis: latest}
	}
	isInt := sp.FieldKind == aggregate.KindInt64
	num := func(v aggregate.Value) float64 {
		if isInt {
			return float64(v.I)
		}
		return v.F
	}
	switch sp.Op {
	case aggregate.OpCount:
		return present(aggregate.Value{Kind: aggregate.KindInt64, I: int64(len(xs))})
	case aggregate.OpSum:
		if isInt {
			return present(aggregate.Value{Kind: aggregate.KindInt64, I: clamp(bigSum(len(xs), func(i int) int64 { return xs[i].v.I }))})
		}
		sum := 0.0
		for _, x := range xs {
			sum += x.v.F
		}
		return present(aggregate.Value{Kind: aggregate.KindFloat64, F: sum})
	}
	if len(xs) == 0 {
		return aggregate.Result{Status: aggregate.StatusNull, EventMillis: latest}
	}
	switch sp.Op {
	case aggregate.OpMin, aggregate.OpMax:
		v := xs[0].v
		for _, x := range xs[1:] {
			switch {
			case isInt && sp.Op == aggregate.OpMin:
				v.I = min(v.I, x.v.I)
			case isInt:
				v.I = max(v.I, x.v.I)
			case sp.Op == aggregate.OpMin:
				v.F = math.Min(v.F, x.v.F)
			default:
				v.F = math.Max(v.F, x.v.F)
			}
		}
		return present(v)
	case aggregate.OpAvg:
		var sum float64
		if isInt {
			sum, _ = new(big.Float).SetInt(bigSum(len(xs), func(i int) int64 { return xs[i].v.I })).Float64()
		} else {
			for _, x := range xs {
				sum += x.v.F
			}
		}
		return present(aggregate.Value{Kind: aggregate.KindFloat64, F: sum / float64(len(xs))})
	case aggregate.OpStddev, aggregate.OpVariance:
		if len(xs) < 2 {
			return aggregate.Result{Status: aggregate.StatusNull, EventMillis: latest}
		}
		// Two passes: the textbook definition, not Welford.
		mean := 0.0
		for _, x := range xs {
			mean += num(x.v)
		}
		mean /= float64(len(xs))
		m2 := 0.0
		for _, x := range xs {
			d := num(x.v) - mean
			m2 += d * d
		}
		v := m2 / float64(len(xs)-1)
		if sp.Op == aggregate.OpStddev {
			v = math.Sqrt(v)
		}
		return present(aggregate.Value{Kind: aggregate.KindFloat64, F: v})
	case aggregate.OpLast:
		best := 0
		for i, x := range xs {
			if x.t >= xs[best].t {
				best = i
			}
		}
		return aggregate.Result{Value: xs[best].v, Status: aggregate.StatusPresent, EventMillis: xs[best].t}
	case aggregate.OpLastK:
		order := make([]int, len(xs))
		for i := range order {
			order[i] = len(xs) - 1 - i // later arrivals first
		}
		sort.SliceStable(order, func(a, b int) bool { return xs[order[a]].t > xs[order[b]].t })
		k := min(sp.K, len(order))
		list := make([]aggregate.Value, k)
		for i := range list {
			list[i] = xs[order[i]].v
		}
		return aggregate.Result{Value: aggregate.Value{Kind: aggregate.KindList, L: list}, Status: aggregate.StatusPresent, EventMillis: xs[order[0]].t}
	case aggregate.OpCountDistinct:
		seen := map[distinctKey]bool{}
		var hashes []uint64
		for _, x := range xs {
			k := keyOf(x.v)
			if !seen[k] {
				seen[k] = true
				hashes = append(hashes, aggregate.HashValue(x.v))
			}
		}
		bound := sp.K
		if bound == 0 {
			bound = aggregate.DefaultDistinctBound
		}
		n := int64(len(seen))
		if len(seen) > bound {
			n = aggregate.EstimateDistinct(hashes)
		}
		return present(aggregate.Value{Kind: aggregate.KindInt64, I: n})
	}
	panic("aggregatetest: unknown operator " + sp.Op.String())
}

// distinctKey identifies a value for count_distinct: floats compare by
// value with -0 == +0 and every NaN equal, as aggregate.HashValue does.
type distinctKey struct {
	kind aggregate.Kind
	i    int64
	f    float64
	nan  bool
	s    string
}

func keyOf(v aggregate.Value) distinctKey {
	k := distinctKey{kind: v.Kind}
	switch v.Kind {
	case aggregate.KindInt64:
		k.i = v.I
	case aggregate.KindBool:
		if v.I != 0 {
			k.i = 1
		}
	case aggregate.KindFloat64:
		if v.F != v.F {
			k.nan = true
		} else {
			k.f = v.F + 0 // -0 -> +0
		}
	case aggregate.KindString:
		k.s = v.S
	}
	return k
}

func bigSum(n int, at func(int) int64) *big.Int {
	sum := new(big.Int)
	var x big.Int
	for i := 0; i < n; i++ {
		sum.Add(sum, x.SetInt64(at(i)))
	}
	return sum
}

func clamp(x *big.Int) int64 {
	switch {
	case x.IsInt64():
		return x.Int64()
	case x.Sign() < 0:
		return math.MinInt64
	default:
		return math.MaxInt64
	}
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b < 0 {
		q--
	}
	return q
}
