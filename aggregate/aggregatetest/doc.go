// Package aggregatetest holds the brute-force reference of featured's
// window semantics and helpers to test against it: Reference computes a
// feature's value straight from raw events (no tiles, no encoding), Stream
// and RandomSpecs generate seeded random inputs, and Equal compares results.
//
// Tests across the repo (store, ingest, serving, offline) use it to check
// that what they serve equals what the definition says. Everything here is
// pure and safe for concurrent use.
package aggregatetest
