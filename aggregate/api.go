package aggregate

// This file is the contract other packages code against. Bodies live in the
// other files of the package.

// Kind is the type of a field value or of a feature's result.
type Kind uint8

const (
	KindNull Kind = iota
	KindInt64
	KindFloat64
	KindString
	KindBool
	KindList // last_k results: a list of Values of the field's kind, newest first
)

// Value is one typed value. The zero Value is null. Only the member that
// matches Kind is meaningful. Values are passed by value on the hot path; a
// Value never points into a buffer that its producer may reuse unless the
// producing function says so.
type Value struct {
	Kind Kind
	I    int64   // KindInt64; KindBool as 0/1
	F    float64 // KindFloat64
	S    string  // KindString
	L    []Value // KindList
}

// Op is an aggregation operator.
type Op uint8

const (
	OpCount Op = iota + 1
	OpSum
	OpMin
	OpMax
	OpAvg
	OpLast
	OpLastK
	OpCountDistinct
	OpStddev
	OpVariance
)

// Spec describes one feature: an operator over one field and one window.
// A Spec is immutable once built; slices of Specs are shared read-only by
// every goroutine.
type Spec struct {
	Op Op
	// Field is the index of the input field in the source's field list, or
	// -1 for count over events (no field).
	Field int
	// FieldKind is the kind of the input field (KindNull when Field is -1).
	FieldKind Kind
	// WindowMillis is the window length; 0 means a lifetime window.
	WindowMillis int64
	// HopMillis is the tile size; WindowMillis is a multiple of it. 0 for
	// lifetime windows.
	HopMillis int64
	// K is last_k's k, or count_distinct's exact bound (0 = DefaultDistinctBound).
	K int
}

// Status says what a read found.
type Status uint8

const (
	StatusPresent  Status = iota // a value
	StatusNull                   // the entity has state, the window holds no value (e.g. min of an empty window)
	StatusNotFound               // no state for the entity, or the state expired (older than the view's TTL)
)

// Result is one feature value as of a read time.
type Result struct {
	Value  Value
	Status Status
	// EventMillis is the event time the value reflects: for last/last_k the
	// chosen event's time, otherwise the latest event time folded into the
	// entity's state at or before the read time.
	EventMillis int64
}

// Layout is the compiled form of one view version: its feature Specs and TTL.
// It is immutable and safe for concurrent use; build it once per view version
// with NewLayout. Every window computation in featured goes through a Layout.
//
//	func NewLayout(specs []Spec, ttlMillis int64) (*Layout, error)
//	func (l *Layout) Specs() []Spec
//	func (l *Layout) TTLMillis() int64
//	func (l *Layout) NewState() *State
//	func (l *Layout) Fold(s *State, eventMillis int64, fields []Value)
//	func (l *Layout) Prune(s *State, horizonMillis int64)
//	func (l *Layout) Read(s *State, feature int, atMillis int64) Result
//	func (l *Layout) AppendEncode(dst []byte, s *State) []byte
//	func (l *Layout) Decode(s *State, data []byte) error
//	func MaxEventMillis(data []byte) (int64, error)
//	func Admit(eventMillis, nowMillis, ttlMillis, maxFutureMillis int64) error
//	func DefaultHopMillis(windowMillis int64) int64
//
// Added by the implementation (see their docs):
//
//	func (l *Layout) ReadEncoded(s *State, data []byte, features []int, atMillis int64, out []Result) error
//	func (l *Layout) ReadTo(s *State, feature int, atMillis int64, out *Result)
//	func (s *State) Empty() bool
//	func (s *State) MaxEventMillis() (int64, bool)
//	func (s *State) Reset()
//	func HashValue(v Value) uint64
//	func EstimateDistinct(hashes []uint64) int64
//	func FormatMillis(ms int64) string
//	type SpecError; ErrInvalidSpec, ErrCorrupt, ErrTooLate, ErrTooFarInFuture, ErrUnknownOp, ErrUnknownKind
//	const DefaultDistinctBound, MaxDistinctBound, MaxLastK
//
// State is the aggregation state of one entity in one view version. A State
// is not safe for concurrent use.
