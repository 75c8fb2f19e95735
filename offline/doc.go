// Package offline will own point-in-time training-set export (Parquet and
// Arrow IPC) computed with the same aggregate.Layout code as online serving.
// It is a placeholder until the offline-export issue.
package offline
