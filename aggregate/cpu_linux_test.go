//go:build linux

package aggregate_test

import (
	"syscall"
	"unsafe"
)

// threadCPUNanos is the CPU time of the calling OS thread
// (CLOCK_THREAD_CPUTIME_ID): benchmarks report it beside wall time because
// the shared machine's other load inflates wall time.
func threadCPUNanos() int64 {
	var ts syscall.Timespec
	const clockThreadCPUTimeID = 3
	syscall.RawSyscall(syscall.SYS_CLOCK_GETTIME, clockThreadCPUTimeID, uintptr(unsafe.Pointer(&ts)), 0)
	return ts.Nano()
}
