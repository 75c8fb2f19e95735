//go:build !linux

package main

import (
	"runtime"
	"time"
)

// Elsewhere the pacer uses Go's timers (see pace_linux.go for why Linux
// does not).
func lockPacer() { runtime.LockOSThread() }

func sleepUntil(t time.Time) { time.Sleep(time.Until(t)) }
