package aggregate

// This file holds the types other packages code against. The contract of
// every function and method is its own doc comment (layout.go, state.go,
// read.go, encode.go, distinct.go); go doc lists them.

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

// Layout (layout.go) and State (state.go) are documented where they are
// declared, with their methods.
