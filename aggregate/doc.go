// Package aggregate is featured's only implementation of window arithmetic:
// tiles, their merge, expiry and on-disk encoding. The store, push and Kafka
// ingest, serving and offline export all call it, which is how training and
// serving never skew. It is pure: no I/O, no clock, no goroutines.
//
// # Concurrency
//
// A Layout is immutable and safe for concurrent use. A State is not: one
// goroutine at a time, for reads too (Read keeps scratch memory in it).
// Package-level functions are safe for concurrent use.
//
// # Times and layouts
//
// Times are int64 milliseconds since the Unix epoch, UTC. A view version is
// a []Spec plus a TTL, compiled and validated by NewLayout. State is kept per
// (entity, view version): the latest event time folded ("no state" when
// nothing was) and one accumulator per feature. A windowed feature (window
// W, hop h, W a multiple of h) keeps one partial aggregate per tile; the
// tile of event time t has index floor(t/h) (floor division, right for
// negative times) and starts at floor(t/h)*h. Only non-empty tiles are kept,
// sorted by start: in-order events append, late ones find their tile by
// binary search. A lifetime feature (W == 0) keeps one accumulator.
//
// # Fold, TTL and reads
//
// Fold(s, t, fields) folds one event. fields is indexed by Spec.Field; a
// feature whose field is missing or KindNull in the event skips it (a value
// of another kind than Spec.FieldKind counts as missing: the decoder produces
// the declared kinds). count with Field -1 counts every event; count with a
// field counts its non-null values.
//
// The TTL rule: "the state of an entity not updated for TTL is gone". If s
// is not empty and t > maxEventMillis + TTL, Fold clears s before folding;
// then maxEventMillis = max(old, t). Results therefore never depend on when
// the store's background GC deletes expired state. Admit is the matching
// ingest rule: events older than now - TTL or later than now + max future
// skew are rejected (ErrTooLate, ErrTooFarInFuture), never folded.
//
// Read(s, i, T): if s is empty or maxEventMillis < T - TTL the result is
// StatusNotFound. Otherwise a windowed feature covers the tiles with start
// in [floor((T - W)/h)*h, T], at most W/h + 1 of them (Chronon's sawtooth:
// the tail is rounded down to a tile edge, so the window spans between W and
// W + h; the head includes T itself, like Feast's event_timestamp <= T). The
// head is exact for reads at or after the latest event, which is how online
// lookups and the offline replay read; a read before the latest event still
// sees all of the tile holding T. A lifetime feature covers its accumulator.
// An empty window reads count = 0 and sum = 0 (StatusPresent, sum in the
// field's kind) and null with StatusNull for every other operator, including
// count_distinct and last_k. Result.EventMillis is the chosen event's time for
// last and last_k (the newest of the list), maxEventMillis otherwise.
//
// Prune(s, horizon) drops the tiles no read at T >= horizon can need (start
// < floor((horizon - W)/h)*h); it never changes such a read. The store calls
// it with its clock minus the largest admitted future skew.
//
// # Operators
//
//	operator         field kinds                  result   tile state
//	count            any, or none (Field -1)      int64    n
//	sum              int64                        int64    exact 128-bit sum
//	sum              float64                      float64  float64 sum
//	min, max         int64, float64               same     value
//	avg              int64                        float64  exact 128-bit sum and n
//	avg              float64                      float64  float64 sum and n
//	last             int64, float64, string, bool same     latest event's time and value
//	last_k(K)        int64, float64, string, bool list     up to K values, newest first
//	count_distinct   int64, float64, string, bool int64    hash set, or HyperLogLog sketch
//	stddev, variance int64, float64               float64  n, mean, M2 (Welford)
//
// Integer sums are exact: tiles and windows accumulate 128 bits, and a
// window whose true sum does not fit in an int64 reads as math.MaxInt64 or
// math.MinInt64 (saturated) rather than wrapping. avg over int64 divides the
// exact sum, rounded to float64, by n.
//
// last is the value of the event with the greatest event time; on equal
// times the later arrival wins. last_k(K) is a KindList of up to K values,
// event time descending, later arrival first on ties; each tile keeps at most
// K.
//
// count_distinct is exact while the window holds at most K distinct values
// (Spec.K, 0 = DefaultDistinctBound = 1000): each tile keeps the sorted set
// of its values' 64-bit hashes (HashValue: FNV-1a 64 over a kind tag and the
// value's bytes, with a murmur3 finalizer; -0 counts as +0 and all NaNs as
// one value). A tile whose set would pass K becomes a HyperLogLog sketch
// (precision 12: 4096 one-byte registers, standard estimator with the
// small-range correction, about 1.6% standard error; hand-written, 60 lines,
// because its registers are part of our on-disk format and must never change
// under us with a library upgrade). A read is exact when no tile is a sketch
// and the union of the sets holds at most K hashes; otherwise it is the
// estimate of the union's sketch. Either way the result depends only on the
// set of distinct values in the window (EstimateDistinct computes it from
// scratch), never on how tiles split it.
//
// stddev and variance are the SAMPLE statistics (n - 1, like SQL var_samp /
// stddev_samp in Spark and DuckDB), null when n < 2. Tiles keep (n, mean, M2)
// updated by Welford's algorithm and are combined with Chan et al.'s
// parallel formula.
//
// # Floating point
//
// Float arithmetic is IEEE-754 in one documented order: within a tile,
// values are folded in arrival order; across tiles, partial results are
// combined in ascending tile start, starting from 0 for sums. The same tiles
// therefore always give the same bits, which the offline exporter relies on.
// min and max follow math.Min and math.Max (a NaN wins, -0 < +0). Nothing is
// rejected here: NaN and ±Inf are the decoder's to filter, and they never
// make this package panic.
//
// # Encoding
//
// AppendEncode writes a State as one value (the store keeps one key per
// (entity, view version)); Decode reads it back, reusing the State's
// memory, and rejects corrupt input with ErrCorrupt. MaxEventMillis reads the
// latest event time from the fixed header without decoding, for TTL GC.
// Each windowed feature's section starts with its first and last tile index
// and the combination of all its tiles; ReadEncoded, the online lookup path,
// decodes only the features asked for and, when all of a feature's tiles are
// in the window (reads soon after the last write, as the store prunes before
// writing), reads only that head. The byte format is in format.md beside
// this file.
package aggregate
