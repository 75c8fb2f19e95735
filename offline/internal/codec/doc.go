// Package codec holds the value encodings that the offline log and the
// export share, so that both read and write a value the same way: the
// binary encoding of WAL frames and spill files (AppendValue, Decoder), the
// Arrow type and array forms of values (ArrowType, AppendArrow, ValueAt),
// and the Snappy codec every Parquet file of the offline tree is written
// with (registered by importing the package; see snappy.go).
//
// Everything here is pure but for that registration: no I/O, no state. A
// Decoder is used by one goroutine at a time; the functions are safe for
// concurrent use.
package codec
