//go:build !linux

package aggregate_test

func threadCPUNanos() int64 { return 0 }
