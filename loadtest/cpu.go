package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// CPU is the CPU time a process (or a set of processes) used during the
// measured part of a run.
type CPU struct {
	// Seconds is user plus system CPU time.
	Seconds float64 `json:"seconds"`
	// Cores is Seconds over the wall-clock time: 1.0 is one core busy.
	Cores float64 `json:"cores"`
	// USPerRequest is CPU microseconds per completed request.
	USPerRequest float64 `json:"us_per_request"`
}

func newCPU(seconds float64, wall time.Duration, requests int64) CPU {
	c := CPU{Seconds: round3(seconds)}
	if wall > 0 {
		c.Cores = round3(seconds / wall.Seconds())
	}
	if requests > 0 {
		c.USPerRequest = round3(seconds * 1e6 / float64(requests))
	}
	return c
}

// selfCPU is this process's user+system CPU time so far (getrusage).
func selfCPU() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return tv(ru.Utime) + tv(ru.Stime)
}

func tv(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }

// clockTicks is USER_HZ, the unit of /proc/<pid>/stat times; 100 on every
// Linux architecture Go supports.
const clockTicks = 100

// procCPU sums user+system CPU time of pids from /proc/<pid>/stat (all
// threads of each process; children only once reaped, so list worker
// processes too).
func procCPU(pids []int) (float64, error) {
	total := 0.0
	for _, pid := range pids {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil {
			return 0, fmt.Errorf("server cpu: %w", err)
		}
		s, err := parseStatCPU(string(b))
		if err != nil {
			return 0, fmt.Errorf("server cpu of pid %d: %w", pid, err)
		}
		total += s
	}
	return total, nil
}

// parseStatCPU reads utime and stime (fields 14 and 15) of a
// /proc/<pid>/stat line; the command name (field 2) may hold spaces and
// parentheses, so fields are counted from the last ')'.
func parseStatCPU(stat string) (float64, error) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, fmt.Errorf("malformed stat %q", stat)
	}
	f := strings.Fields(stat[i+1:])
	// f[0] is field 3 (state); utime is field 14, stime field 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("malformed stat %q", stat)
	}
	ut, err1 := strconv.ParseUint(f[11], 10, 64)
	st, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("malformed stat times %q %q", f[11], f[12])
	}
	return float64(ut+st) / clockTicks, nil
}

// loadAvg1 is the 1-minute load average, or -1.
func loadAvg1() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return -1
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return -1
	}
	v, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		return -1
	}
	return v
}
