package aggregate

import (
	"errors"
	"fmt"
	"strconv"
)

// ErrUnknownOp and ErrUnknownKind are returned (wrapped, with the name) by
// ParseOp and ParseKind.
var (
	ErrUnknownOp   = errors.New("aggregate: unknown aggregation")
	ErrUnknownKind = errors.New("aggregate: unknown field type")
)

var opNames = [...]string{
	OpCount:         "count",
	OpSum:           "sum",
	OpMin:           "min",
	OpMax:           "max",
	OpAvg:           "avg",
	OpLast:          "last",
	OpLastK:         "last_k",
	OpCountDistinct: "count_distinct",
	OpStddev:        "stddev",
	OpVariance:      "variance",
}

// ParseOp maps an aggregation name as written in definitions ("sum",
// "last_k", "count_distinct", "stddev", ...) to its Op. Names are the ones
// Op.String returns; matching is exact (lower case).
func ParseOp(name string) (Op, error) {
	for o, n := range opNames {
		if n != "" && n == name {
			return Op(o), nil
		}
	}
	return 0, fmt.Errorf("%w %q (want one of count, sum, min, max, avg, last, last_k, count_distinct, stddev, variance)", ErrUnknownOp, name)
}

// String returns the operator's name as written in definitions.
func (o Op) String() string {
	if int(o) < len(opNames) && opNames[o] != "" {
		return opNames[o]
	}
	return "Op(" + strconv.Itoa(int(o)) + ")"
}

// Accepts reports whether the operator can aggregate a field of kind k
// (KindNull: no field, allowed for count only).
//
//	count                                any kind, or no field (KindNull)
//	sum, min, max, avg, stddev, variance int64, float64
//	last, last_k, count_distinct         int64, float64, string, bool
func (o Op) Accepts(k Kind) bool {
	switch o {
	case OpCount:
		return k <= KindBool
	case OpSum, OpMin, OpMax, OpAvg, OpStddev, OpVariance:
		return k == KindInt64 || k == KindFloat64
	case OpLast, OpLastK, OpCountDistinct:
		return k >= KindInt64 && k <= KindBool
	}
	return false
}

// ResultKind is the kind of the operator's result over a field of kind k:
// int64 for count and count_distinct, the field's kind for sum, min, max and
// last, float64 for avg, stddev and variance, KindList for last_k.
func (o Op) ResultKind(k Kind) Kind {
	switch o {
	case OpCount, OpCountDistinct:
		return KindInt64
	case OpSum, OpMin, OpMax, OpLast:
		return k
	case OpAvg, OpStddev, OpVariance:
		return KindFloat64
	case OpLastK:
		return KindList
	}
	return KindNull
}

var kindNames = [...]string{
	KindNull:    "null",
	KindInt64:   "int64",
	KindFloat64: "float64",
	KindString:  "string",
	KindBool:    "bool",
	KindList:    "list",
}

// ParseKind maps "int64", "float64", "string", "bool" to a Kind.
func ParseKind(name string) (Kind, error) {
	switch name {
	case "int64":
		return KindInt64, nil
	case "float64":
		return KindFloat64, nil
	case "string":
		return KindString, nil
	case "bool":
		return KindBool, nil
	}
	return KindNull, fmt.Errorf("%w %q (want int64, float64, string or bool)", ErrUnknownKind, name)
}

// String returns the kind's name: "null", "int64", "float64", "string",
// "bool" or "list".
func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "Kind(" + strconv.Itoa(int(k)) + ")"
}
