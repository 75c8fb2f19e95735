//go:build linux

package main

import (
	"runtime"
	"syscall"
	"time"
)

// The open-loop pacer must wake within tens of microseconds of each send
// time: a request sent late is charged the delay (latency is measured from
// the scheduled time), so the pacer's own lateness would show as server
// latency. Go's timers wake up to a millisecond late on an idle process
// (the netpoller waits in whole milliseconds), so the pacer runs on its own
// OS thread, with the thread's timer slack cut from 50 µs to 1 ns, and
// sleeps in nanosleep(2). The send lag that remains is measured and
// reported (Result.SendLag).

const prSetTimerSlack = 29 // PR_SET_TIMERSLACK

// lockPacer pins the calling goroutine to its thread and makes that
// thread's sleeps precise. The caller runs the pacer loop and never unlocks
// (the thread exits with the goroutine).
func lockPacer() {
	runtime.LockOSThread()
	_, _, _ = syscall.RawSyscall(syscall.SYS_PRCTL, prSetTimerSlack, 1, 0)
}

// sleepUntil blocks the thread until t.
func sleepUntil(t time.Time) {
	d := time.Until(t)
	if d <= 0 {
		return
	}
	ts := syscall.NsecToTimespec(int64(d))
	for {
		var rem syscall.Timespec
		if err := syscall.Nanosleep(&ts, &rem); err != syscall.EINTR {
			return
		}
		ts = rem
	}
}
