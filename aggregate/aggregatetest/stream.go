package aggregatetest

import (
	"math/rand/v2"
	"strconv"

	"github.com/featured-dev/featured/aggregate"
)

// StreamOptions shape a random event stream. The zero value is usable:
// EnsureDefaults fills zero fields; a negative fraction disables that
// feature of the stream.
type StreamOptions struct {
	// Events is the number of events. The default value is 300.
	Events int
	// Fields are the kinds of the events' fields. The default value is
	// int64, float64, string, bool.
	Fields []aggregate.Kind
	// StartMillis is the first event's time. The default value is
	// 1_700_000_000_000 (November 2023).
	StartMillis int64
	// MeanGapMillis is the mean time between in-order events. The default
	// value is 10 minutes.
	MeanGapMillis int64
	// LateFraction of the events arrive up to MaxLateMillis before the
	// latest event so far. The defaults are 0.15 and 6 hours.
	LateFraction  float64
	MaxLateMillis int64
	// DuplicateFraction of the events repeat the previous event's time.
	// The default value is 0.05.
	DuplicateFraction float64
	// AlignFraction of the events fall exactly on a minute, 5-minute or
	// hour boundary (tile edges). The default value is 0.1.
	AlignFraction float64
	// NullFraction of the field values are missing (KindNull). The default
	// value is 0.1.
	NullFraction float64
	// GapFraction of the events come GapMillis after the previous latest
	// event: more than a TTL shorter than it resets the state. The defaults
	// are 0.01 and 9 days.
	GapFraction float64
	GapMillis   int64
	// Cardinality is the number of distinct values per field. The default
	// value is 30.
	Cardinality int
}

// EnsureDefaults fills the zero fields of o with their default values.
func (o *StreamOptions) EnsureDefaults() {
	if o.Events == 0 {
		o.Events = 300
	}
	if o.Fields == nil {
		o.Fields = []aggregate.Kind{aggregate.KindInt64, aggregate.KindFloat64, aggregate.KindString, aggregate.KindBool}
	}
	if o.StartMillis == 0 {
		o.StartMillis = 1_700_000_000_000
	}
	if o.MeanGapMillis == 0 {
		o.MeanGapMillis = 10 * 60_000
	}
	if o.LateFraction == 0 {
		o.LateFraction = 0.15
	}
	if o.MaxLateMillis == 0 {
		o.MaxLateMillis = 6 * 3_600_000
	}
	if o.DuplicateFraction == 0 {
		o.DuplicateFraction = 0.05
	}
	if o.AlignFraction == 0 {
		o.AlignFraction = 0.1
	}
	if o.NullFraction == 0 {
		o.NullFraction = 0.1
	}
	if o.GapFraction == 0 {
		o.GapFraction = 0.01
	}
	if o.GapMillis == 0 {
		o.GapMillis = 9 * 86_400_000
	}
	if o.Cardinality == 0 {
		o.Cardinality = 30
	}
}

// Stream returns a random event stream in arrival order, the same for the
// same seed and options.
func Stream(seed uint64, o StreamOptions) []Event {
	o.EnsureDefaults()
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	events := make([]Event, 0, o.Events)
	latest := o.StartMillis
	for i := 0; i < o.Events; i++ {
		var t int64
		switch p := rng.Float64(); {
		case i == 0:
			t = latest
		case p < o.DuplicateFraction:
			t = events[i-1].Millis
		case p < o.DuplicateFraction+o.LateFraction && o.MaxLateMillis > 0:
			t = latest - rng.Int64N(o.MaxLateMillis+1)
		case p < o.DuplicateFraction+o.LateFraction+o.GapFraction:
			t = latest + o.GapMillis + rng.Int64N(o.MeanGapMillis+1)
		default:
			t = latest + rng.Int64N(2*o.MeanGapMillis+1)
		}
		if rng.Float64() < o.AlignFraction {
			unit := []int64{60_000, 300_000, 3_600_000}[rng.IntN(3)]
			t = floorDiv(t, unit) * unit
		}
		latest = max(latest, t)
		fields := make([]aggregate.Value, len(o.Fields))
		for f, k := range o.Fields {
			if rng.Float64() < o.NullFraction {
				continue
			}
			fields[f] = RandomValue(rng, k, o.Cardinality)
		}
		events = append(events, Event{Millis: t, Fields: fields})
	}
	return events
}

// RandomValue returns one of about cardinality distinct values of kind k.
func RandomValue(rng *rand.Rand, k aggregate.Kind, cardinality int) aggregate.Value {
	c := max(cardinality, 1)
	x := rng.IntN(c)
	switch k {
	case aggregate.KindInt64:
		return aggregate.Value{Kind: k, I: int64(x - c/2)}
	case aggregate.KindFloat64:
		return aggregate.Value{Kind: k, F: float64(x-c/2)*1.37 + 0.1}
	case aggregate.KindString:
		return aggregate.Value{Kind: k, S: "v" + strconv.Itoa(x)}
	case aggregate.KindBool:
		return aggregate.Value{Kind: k, I: int64(x & 1)}
	}
	return aggregate.Value{}
}

// Windows are (window, hop) pairs RandomSpecs draws from, in milliseconds;
// {0, 0} is a lifetime feature.
var Windows = [][2]int64{
	{0, 0},
	{60_000, 1_000},
	{3_600_000, 60_000},
	{3_600_000, 1_800_000},
	{90 * 60_000, 90 * 60_000},
	{86_400_000, 300_000},
	{86_400_000, 3_600_000},
	{2 * 86_400_000, 6 * 3_600_000},
	{7 * 86_400_000, 3_600_000},
}

// RandomSpecs returns specs with every operator over every field kind it
// accepts (and count over events), each with a window from Windows no
// longer than ttlMillis, a random last_k K and count_distinct bound.
func RandomSpecs(seed uint64, fields []aggregate.Kind, ttlMillis int64) []aggregate.Spec {
	rng := rand.New(rand.NewPCG(seed, 0x5bec))
	var windows [][2]int64
	for _, w := range Windows {
		if w[0] <= ttlMillis {
			windows = append(windows, w)
		}
	}
	var specs []aggregate.Spec
	add := func(op aggregate.Op, field int, kind aggregate.Kind) {
		w := windows[rng.IntN(len(windows))]
		sp := aggregate.Spec{Op: op, Field: field, FieldKind: kind, WindowMillis: w[0], HopMillis: w[1]}
		switch op {
		case aggregate.OpLastK:
			sp.K = 1 + rng.IntN(5)
		case aggregate.OpCountDistinct:
			sp.K = []int{0, 3, 10, 25}[rng.IntN(4)]
		}
		specs = append(specs, sp)
	}
	add(aggregate.OpCount, -1, aggregate.KindNull)
	for op := aggregate.OpCount; op <= aggregate.OpVariance; op++ {
		for f, k := range fields {
			if op.Accepts(k) {
				add(op, f, k)
			}
		}
	}
	return specs
}
