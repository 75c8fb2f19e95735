package aggregate

// TEMPORARY: placeholder so other packages compile while the engine is
// written. The aggregate implementer deletes this file.

import "errors"

var errNotYet = errors.New("aggregate: not implemented yet")

type Layout struct {
	specs     []Spec
	ttlMillis int64
}

type State struct{}

func NewLayout(specs []Spec, ttlMillis int64) (*Layout, error) {
	return &Layout{specs: specs, ttlMillis: ttlMillis}, nil
}
func (l *Layout) Specs() []Spec                                    { return l.specs }
func (l *Layout) TTLMillis() int64                                 { return l.ttlMillis }
func (l *Layout) NewState() *State                                 { return &State{} }
func (l *Layout) Fold(s *State, eventMillis int64, fields []Value) { panic(errNotYet) }
func (l *Layout) Prune(s *State, horizonMillis int64)              { panic(errNotYet) }
func (l *Layout) Read(s *State, feature int, atMillis int64) Result {
	panic(errNotYet)
}
func (l *Layout) AppendEncode(dst []byte, s *State) []byte { panic(errNotYet) }
func (l *Layout) Decode(s *State, data []byte) error       { return errNotYet }
func MaxEventMillis(data []byte) (int64, error)            { return 0, errNotYet }
func Admit(eventMillis, nowMillis, ttlMillis, maxFutureMillis int64) error {
	return nil
}
func DefaultHopMillis(windowMillis int64) int64 { return 60_000 }

// ParseOp maps an aggregation name as written in definitions ("sum",
// "last_k", "count_distinct", "stddev", ...) to its Op.
func ParseOp(name string) (Op, error) { return 0, errNotYet }
func (o Op) String() string           { return "" }

// Accepts reports whether the operator can aggregate a field of kind k
// (KindNull: no field, allowed for count only).
func (o Op) Accepts(k Kind) bool { return true }

// ResultKind is the kind of the operator's result over a field of kind k.
func (o Op) ResultKind(k Kind) Kind { return k }

// ParseKind maps "int64", "float64", "string", "bool" to a Kind.
func ParseKind(name string) (Kind, error) { return 0, errNotYet }
func (k Kind) String() string             { return "" }
