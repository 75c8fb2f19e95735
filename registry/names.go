package registry

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/featured-dev/featured/aggregate"
)

// maxNameLen bounds every name and field name.
const maxNameLen = 128

// maxTilesPerWindow bounds window/hop: a window reads up to window/hop+1
// tiles per lookup and keeps as many per entity. One week at one-minute hops.
const maxTilesPerWindow = 7 * 24 * 60

// maxLastK bounds last_k's k: the state keeps k values per tile.
const maxLastK = 1000

// maxDistinctK bounds count_distinct's exact bound k: a tile keeps up to k
// 8-byte hashes before it turns into a 4 KiB HyperLogLog sketch, so k caps
// a tile at 80 KiB. Beyond 10000 the sketch's ~1.6% error is cheaper than
// an exact set.
const maxDistinctK = 10000

// reservedSourceNames are names a source may not take: the offline log
// keeps one directory per source beside its own "wal" directory, and its
// retention would treat a source of that name as its write-ahead log.
var reservedSourceNames = map[string]bool{"wal": true}

// checkName reports what is wrong with the name of an entity, source, view,
// feature or service: [a-z_][a-z0-9_]*, at most maxNameLen bytes, without
// "__" (Feast's full feature names are "view__feature", so a name with "__"
// would make them ambiguous; ':' and '@' are excluded for refs).
func checkName(s string) string {
	if s == "" {
		return "required"
	}
	if len(s) > maxNameLen {
		return fmt.Sprintf("longer than %d characters", maxNameLen)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '_', c >= 'a' && c <= 'z':
		case c >= '0' && c <= '9' && i > 0:
		default:
			return fmt.Sprintf("%q is not a valid name: want [a-z_][a-z0-9_]*", s)
		}
	}
	if strings.Contains(s, "__") {
		return fmt.Sprintf("%q contains \"__\", which Feast uses to join view and feature names", s)
	}
	return ""
}

// checkFieldName reports what is wrong with the name of an event field or a
// join key: [A-Za-z_][A-Za-z0-9_]*, at most maxNameLen bytes. Event fields
// are JSON keys chosen by producers, so upper case is allowed.
func checkFieldName(s string) string {
	if s == "" {
		return "required"
	}
	if len(s) > maxNameLen {
		return fmt.Sprintf("longer than %d characters", maxNameLen)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '_', c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z':
		case c >= '0' && c <= '9' && i > 0:
		default:
			return fmt.Sprintf("%q is not a valid field name: want [A-Za-z_][A-Za-z0-9_]*", s)
		}
	}
	return ""
}

// checkTopic reports what is wrong with a Kafka topic name (Kafka's own
// rule: 1 to 249 of [a-zA-Z0-9._-], not "." or "..").
func checkTopic(s string) string {
	if s == "" {
		return "required"
	}
	if len(s) > 249 {
		return "longer than 249 characters"
	}
	if s == "." || s == ".." {
		return fmt.Sprintf("%q is not a valid topic name", s)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == '.' || c == '_' || c == '-' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return fmt.Sprintf("%q is not a valid topic name: want [a-zA-Z0-9._-]", s)
		}
	}
	return ""
}

// The kinds a source field may have, by their name in definitions.
var fieldKinds = map[string]aggregate.Kind{
	"int64":   aggregate.KindInt64,
	"float64": aggregate.KindFloat64,
	"string":  aggregate.KindString,
	"bool":    aggregate.KindBool,
}

// kindName names a kind as definitions write it. The registry keeps its own
// names (rather than aggregate's Kind.String) because they are part of the
// definitions format and of the registry file.
func kindName(k aggregate.Kind) string {
	switch k {
	case aggregate.KindInt64:
		return "int64"
	case aggregate.KindFloat64:
		return "float64"
	case aggregate.KindString:
		return "string"
	case aggregate.KindBool:
		return "bool"
	case aggregate.KindNull:
		return "null"
	case aggregate.KindList:
		return "list"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// opInfo is how definitions name an aggregation and what it needs. The
// registry checks these itself so that errors name the YAML path;
// aggregate.NewLayout checks the compiled Specs again, and
// TestOpTableMatchesAggregate keeps the two in agreement.
type opInfo struct {
	name string
	op   aggregate.Op
	// numeric: the field must be int64 or float64. Otherwise any kind.
	numeric bool
	// optionalField: the field may be omitted (count counts events).
	optionalField bool
	// k: "required" for last_k, "optional" for count_distinct's exact
	// bound, "" where k is not allowed.
	k string
}

var ops = []opInfo{
	{name: "count", op: aggregate.OpCount, optionalField: true},
	{name: "sum", op: aggregate.OpSum, numeric: true},
	{name: "min", op: aggregate.OpMin, numeric: true},
	{name: "max", op: aggregate.OpMax, numeric: true},
	{name: "avg", op: aggregate.OpAvg, numeric: true},
	{name: "last", op: aggregate.OpLast},
	{name: "last_k", op: aggregate.OpLastK, k: "required"},
	{name: "count_distinct", op: aggregate.OpCountDistinct, k: "optional"},
	{name: "stddev", op: aggregate.OpStddev, numeric: true},
	{name: "variance", op: aggregate.OpVariance, numeric: true},
}

func lookupOp(name string) (opInfo, bool) {
	for _, o := range ops {
		if o.name == name {
			return o, true
		}
	}
	return opInfo{}, false
}

func opNames() string {
	names := make([]string, len(ops))
	for i, o := range ops {
		names[i] = o.name
	}
	return strings.Join(names, ", ")
}

// accepts reports whether the aggregation takes a field of kind k
// (KindNull: no field). aggregate's own rule must agree as well.
func (o opInfo) accepts(k aggregate.Kind) bool {
	switch {
	case k == aggregate.KindNull:
		if !o.optionalField {
			return false
		}
	case o.numeric:
		if k != aggregate.KindInt64 && k != aggregate.KindFloat64 {
			return false
		}
	}
	return o.op.Accepts(k)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// suggest returns the candidate closest to s by edit distance, if it is
// close enough to be a likely typo.
func suggest(s string, candidates []string) string {
	best, bestD := "", 3
	for _, c := range candidates {
		if d := editDistance(s, c); d < bestD {
			best, bestD = c, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// Durations in definitions: one or more <integer><unit> with units d, h, m,
// s, ms in that order, each at most once: "7d", "90m", "1h30m", "500ms".
var durationUnits = []struct {
	name string
	d    time.Duration
}{
	{"d", 24 * time.Hour},
	{"h", time.Hour},
	{"m", time.Minute},
	{"s", time.Second},
	{"ms", time.Millisecond},
}

// maxDuration bounds every duration (100 years), far from int64 overflow.
const maxDuration = 36500 * 24 * time.Hour

// ParseDuration parses a definitions duration: one or more <integer><unit>
// with units d, h, m, s, ms in that order, e.g. "7d", "90m", "1h30m",
// "1s500ms". The result is positive and at most 100 years.
func ParseDuration(s string) (time.Duration, error) {
	if s == "" {
		return 0, fmt.Errorf("empty duration")
	}
	bad := func() (time.Duration, error) {
		return 0, fmt.Errorf("%q is not a duration: want e.g. 500ms, 30s, 90m, 1h30m, 7d", s)
	}
	var total time.Duration
	next := 0 // index of the largest unit still allowed
	for i := 0; i < len(s); {
		j := i
		var n int64
		for j < len(s) && s[j] >= '0' && s[j] <= '9' {
			// Checked before the multiply: n*10 must not wrap (an
			// 18446744073709551623d once parsed as 7d).
			if n > (int64(maxDuration)-9)/10 {
				return 0, fmt.Errorf("%q is longer than 100 years", s)
			}
			n = n*10 + int64(s[j]-'0')
			if n > int64(maxDuration) {
				return 0, fmt.Errorf("%q is longer than 100 years", s)
			}
			j++
		}
		if j == i {
			return bad()
		}
		k := j
		for k < len(s) && (s[k] < '0' || s[k] > '9') {
			k++
		}
		unit := s[j:k]
		u := -1
		for x := next; x < len(durationUnits); x++ {
			if durationUnits[x].name == unit {
				u = x
				break
			}
		}
		if u < 0 {
			return bad()
		}
		next = u + 1
		if n > int64(maxDuration/durationUnits[u].d) {
			return 0, fmt.Errorf("%q is longer than 100 years", s)
		}
		total += time.Duration(n) * durationUnits[u].d
		if total > maxDuration {
			return 0, fmt.Errorf("%q is longer than 100 years", s)
		}
		i = k
	}
	if total <= 0 {
		return 0, fmt.Errorf("%q is not positive", s)
	}
	return total, nil
}

// FormatDuration writes d the way definitions do: "7d", "1h30m", "1s500ms";
// "0s" for zero. Sub-millisecond parts are dropped.
func FormatDuration(d time.Duration) string {
	if d <= 0 {
		return "0s"
	}
	var b strings.Builder
	for _, u := range durationUnits {
		if n := d / u.d; n > 0 {
			fmt.Fprintf(&b, "%d%s", n, u.name)
			d -= n * u.d
		}
	}
	if b.Len() == 0 {
		return "0s"
	}
	return b.String()
}
