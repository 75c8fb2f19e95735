// Package skew checks that online and offline agree: a Sampler keeps the
// latest answers the store gave (featurestore.Options.ReadSampler), and
// Verify recomputes them through the export, in served mode, comparing
// every value bit for bit. It owns nothing on disk but the temporary
// spines of a check.
//
// A Sampler is safe for concurrent use (the store's readers record into
// it). Verify may run concurrently with ingestion, exports and other
// checks.
package skew
