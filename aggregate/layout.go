package aggregate

import (
	"errors"
	"fmt"
	"strconv"
)

const (
	// DefaultDistinctBound is count_distinct's exact bound when Spec.K is 0:
	// up to this many distinct values in a window the count is exact, beyond
	// it a HyperLogLog estimate.
	DefaultDistinctBound = 1000
	// MaxDistinctBound caps Spec.K for count_distinct (an exact tile holds
	// up to K 8-byte hashes).
	MaxDistinctBound = 1 << 16
	// MaxLastK caps Spec.K for last_k (every tile keeps up to K values).
	MaxLastK = 1000
)

// ErrInvalidSpec is the error every *SpecError matches with errors.Is.
var ErrInvalidSpec = errors.New("aggregate: invalid feature spec")

// SpecError is NewLayout's error: which feature (index into the specs, -1 for
// the view's TTL), which Spec field, and what is wrong with it. Callers that
// know the feature names (the registry) can rewrite it into their own path.
type SpecError struct {
	Feature int    // index into specs; -1 when the TTL is wrong
	Field   string // "op", "field", "field_kind", "window_millis", "hop_millis", "k" or "ttl_millis"
	Reason  string
}

func (e *SpecError) Error() string {
	if e.Feature < 0 {
		return "aggregate: " + e.Field + ": " + e.Reason
	}
	return "aggregate: features[" + strconv.Itoa(e.Feature) + "]." + e.Field + ": " + e.Reason
}

// Unwrap makes errors.Is(err, ErrInvalidSpec) true.
func (e *SpecError) Unwrap() error { return ErrInvalidSpec }

// code is an (operator, field kind) pair resolved at NewLayout time, so
// that Fold and Read switch once per feature.
type code uint8

const (
	cCount code = iota
	cSumInt
	cSumFloat
	cMinInt
	cMinFloat
	cMaxInt
	cMaxFloat
	cAvgInt
	cAvgFloat
	cVarInt   // stddev and variance over int64
	cVarFloat // stddev and variance over float64
	cLast
	cLastK
	cDistinct
)

// feat is one compiled Spec.
type feat struct {
	code     code
	op       Op
	field    int
	kind     Kind  // field kind
	hop      int64 // 0 for lifetime
	span     int64 // window/hop: a read covers tiles [floor(T/hop)-span, floor(T/hop)]
	k        int   // last_k's K, count_distinct's bound
	obj      bool  // tiles need a tileObj (last over strings, last_k, count_distinct)
	lifetime bool
}

// Layout is the compiled form of one view version: its feature Specs and
// TTL. It is immutable and safe for concurrent use; build it once per view
// version with NewLayout. Every window computation in featured goes through
// a Layout.
type Layout struct {
	specs     []Spec
	ttlMillis int64
	feats     []feat
}

// NewLayout validates specs and ttlMillis and compiles them. The rules:
// ttlMillis > 0; the operator accepts the field's kind (Op.Accepts); Field
// is -1 exactly when FieldKind is KindNull (count over events); a window
// (WindowMillis > 0) has HopMillis > 0, WindowMillis % HopMillis == 0 and
// WindowMillis <= ttlMillis; a lifetime feature (WindowMillis == 0) has
// HopMillis == 0; last_k has 1 <= K <= MaxLastK; count_distinct has
// 0 <= K <= MaxDistinctBound (0: DefaultDistinctBound); other operators
// have K == 0. The error is a *SpecError naming the feature index and field.
// specs is copied.
func NewLayout(specs []Spec, ttlMillis int64) (*Layout, error) {
	if ttlMillis <= 0 {
		return nil, &SpecError{Feature: -1, Field: "ttl_millis", Reason: "must be > 0, got " + strconv.FormatInt(ttlMillis, 10)}
	}
	l := &Layout{
		specs:     append([]Spec(nil), specs...),
		ttlMillis: ttlMillis,
		feats:     make([]feat, len(specs)),
	}
	for i, sp := range l.specs {
		f, err := compile(sp, ttlMillis)
		if err != nil {
			err.Feature = i
			return nil, err
		}
		l.feats[i] = f
	}
	return l, nil
}

func compile(sp Spec, ttlMillis int64) (feat, *SpecError) {
	bad := func(field, format string, args ...any) (feat, *SpecError) {
		return feat{}, &SpecError{Field: field, Reason: fmt.Sprintf(format, args...)}
	}
	if sp.Op < OpCount || sp.Op > OpVariance {
		return bad("op", "unknown operator %d", sp.Op)
	}
	switch {
	case sp.Field < -1:
		return bad("field", "must be >= 0, or -1 for count over events; got %d", sp.Field)
	case sp.Field == -1 && sp.Op != OpCount:
		return bad("field", "%s needs a field", sp.Op)
	case sp.Field == -1 && sp.FieldKind != KindNull:
		return bad("field_kind", "must be null when field is -1, got %s", sp.FieldKind)
	case sp.Field >= 0 && sp.FieldKind == KindNull:
		return bad("field_kind", "field %d has no kind", sp.Field)
	case !sp.Op.Accepts(sp.FieldKind):
		return bad("field_kind", "%s does not accept %s fields", sp.Op, sp.FieldKind)
	}
	switch {
	case sp.WindowMillis < 0:
		return bad("window_millis", "must be >= 0 (0 for lifetime), got %d", sp.WindowMillis)
	case sp.WindowMillis == 0 && sp.HopMillis != 0:
		return bad("hop_millis", "must be 0 for a lifetime feature, got %s", FormatMillis(sp.HopMillis))
	case sp.WindowMillis > 0 && sp.HopMillis <= 0:
		return bad("hop_millis", "must be > 0 for window %s, got %d", FormatMillis(sp.WindowMillis), sp.HopMillis)
	case sp.WindowMillis > 0 && sp.WindowMillis%sp.HopMillis != 0:
		return bad("hop_millis", "window %s is not a multiple of hop %s", FormatMillis(sp.WindowMillis), FormatMillis(sp.HopMillis))
	case sp.WindowMillis > ttlMillis:
		return bad("window_millis", "%s exceeds ttl %s", FormatMillis(sp.WindowMillis), FormatMillis(ttlMillis))
	}
	k := sp.K
	switch sp.Op {
	case OpLastK:
		if k < 1 || k > MaxLastK {
			return bad("k", "last_k needs 1 <= k <= %d, got %d", MaxLastK, k)
		}
	case OpCountDistinct:
		if k < 0 || k > MaxDistinctBound {
			return bad("k", "count_distinct bound must be in [0, %d] (0: %d), got %d", MaxDistinctBound, DefaultDistinctBound, k)
		}
		if k == 0 {
			k = DefaultDistinctBound
		}
	default:
		if k != 0 {
			return bad("k", "%s takes no k, got %d", sp.Op, k)
		}
	}
	f := feat{op: sp.Op, field: sp.Field, kind: sp.FieldKind, hop: sp.HopMillis, k: k, lifetime: sp.WindowMillis == 0}
	if sp.HopMillis > 0 {
		f.span = sp.WindowMillis / sp.HopMillis
	}
	isInt := sp.FieldKind == KindInt64
	pick := func(i, fl code) code {
		if isInt {
			return i
		}
		return fl
	}
	switch sp.Op {
	case OpCount:
		f.code = cCount
	case OpSum:
		f.code = pick(cSumInt, cSumFloat)
	case OpMin:
		f.code = pick(cMinInt, cMinFloat)
	case OpMax:
		f.code = pick(cMaxInt, cMaxFloat)
	case OpAvg:
		f.code = pick(cAvgInt, cAvgFloat)
	case OpStddev, OpVariance:
		f.code = pick(cVarInt, cVarFloat)
	case OpLast:
		f.code = cLast
		f.obj = sp.FieldKind == KindString
	case OpLastK:
		f.code = cLastK
		f.obj = true
	case OpCountDistinct:
		f.code = cDistinct
		f.obj = true
	}
	return f, nil
}

// Specs returns the layout's feature specs. The slice is shared: do not
// modify it.
func (l *Layout) Specs() []Spec { return l.specs }

// TTLMillis returns the view version's TTL in milliseconds.
func (l *Layout) TTLMillis() int64 { return l.ttlMillis }

// NewState returns an empty State for this layout.
func (l *Layout) NewState() *State {
	return &State{feats: make([]featState, len(l.feats))}
}

// Errors of Admit, wrapped with the numbers.
var (
	ErrTooLate        = errors.New("aggregate: event older than ttl")
	ErrTooFarInFuture = errors.New("aggregate: event too far in the future")
)

// Admit is the ingest acceptance rule: an event at eventMillis is rejected
// with ErrTooLate when eventMillis < nowMillis - ttlMillis and with
// ErrTooFarInFuture when eventMillis > nowMillis + maxFutureMillis. Both
// bounds are inclusive of the admitted side.
func Admit(eventMillis, nowMillis, ttlMillis, maxFutureMillis int64) error {
	if lo := subSat(nowMillis, ttlMillis); eventMillis < lo {
		return fmt.Errorf("%w: event at %d is %s before now %d (ttl %s)",
			ErrTooLate, eventMillis, FormatMillis(subSat(nowMillis, eventMillis)), nowMillis, FormatMillis(ttlMillis))
	}
	if hi := addSat(nowMillis, maxFutureMillis); eventMillis > hi {
		return fmt.Errorf("%w: event at %d is %s after now %d (max %s)",
			ErrTooFarInFuture, eventMillis, FormatMillis(subSat(eventMillis, nowMillis)), nowMillis, FormatMillis(maxFutureMillis))
	}
	return nil
}

const (
	msSecond = int64(1000)
	msMinute = 60 * msSecond
	msHour   = 60 * msMinute
	msDay    = 24 * msHour
)

// DefaultHopMillis returns the default tile size for a window of
// windowMillis (0 for windowMillis <= 0, a lifetime feature):
//
//	window          preferred hop
//	<= 1m           1s
//	<= 1h           1m
//	<= 24h          5m
//	> 24h           1h
//
// When the window is not a multiple of the preferred hop, the hop is the
// largest of 1h, 5m, 1m, 1s, 1ms that divides the window (always one no
// larger than the preferred hop): 90s -> 1s, 1500ms -> 1ms, 36h30m -> 5m.
func DefaultHopMillis(windowMillis int64) int64 {
	if windowMillis <= 0 {
		return 0
	}
	var pref int64
	switch {
	case windowMillis <= msMinute:
		pref = msSecond
	case windowMillis <= msHour:
		pref = msMinute
	case windowMillis <= msDay:
		pref = 5 * msMinute
	default:
		pref = msHour
	}
	for _, h := range [...]int64{msHour, 5 * msMinute, msMinute, msSecond, 1} {
		if h <= pref && windowMillis%h == 0 {
			return h
		}
	}
	return 1
}

// FormatMillis writes a duration in milliseconds in the definitions' unit
// syntax with the largest unit that divides it exactly: 7d, 90m, 1500ms.
func FormatMillis(ms int64) string {
	if ms == 0 {
		return "0ms"
	}
	for _, u := range [...]struct {
		n    int64
		name string
	}{{msDay, "d"}, {msHour, "h"}, {msMinute, "m"}, {msSecond, "s"}} {
		if ms%u.n == 0 {
			return strconv.FormatInt(ms/u.n, 10) + u.name
		}
	}
	return strconv.FormatInt(ms, 10) + "ms"
}
