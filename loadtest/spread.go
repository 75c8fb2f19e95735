package main

import (
	"fmt"
	"strings"
	"sync/atomic"
	"time"
)

// splitAddrs splits -addr's comma-separated list: several addresses are
// the nodes of one system (a featured cluster), any of which answers any
// request.
func splitAddrs(addr string) []string {
	var out []string
	for _, a := range strings.Split(addr, ",") {
		if a = strings.TrimSpace(a); a != "" {
			out = append(out, a)
		}
	}
	return out
}

// spreadTarget drives the nodes of one system: it holds one target per
// address, built from the same workload, and hands out connections to them
// in turn, so the run's workers (and a worker that redials after an error)
// are spread evenly over the nodes. Every node gets the same requests in
// the same order; what a node does with a key it does not hold (forward
// it) is the system's business and is what a cluster run measures.
type spreadTarget struct {
	addrs []string
	ts    []target
	next  atomic.Uint64
}

// newSpreadTarget builds name's target for every address of addrs (at
// least two).
func newSpreadTarget(name string, addrs []string, w Workload, timeout time.Duration, grpcConns int, now time.Time) (*spreadTarget, error) {
	s := &spreadTarget{addrs: addrs}
	for _, a := range addrs {
		t, err := newTarget(name, a, w, timeout, grpcConns, now)
		if err != nil {
			s.close()
			return nil, fmt.Errorf("loadtest: target %s: %w", a, err)
		}
		s.ts = append(s.ts, t)
	}
	return s, nil
}

// requests is the same for every node: each was built from the workload.
func (s *spreadTarget) requests() int { return s.ts[0].requests() }

func (s *spreadTarget) close() {
	for _, t := range s.ts {
		t.close()
	}
}

// dial opens a connection to the next address in turn: the first
// len(addrs) dials reach every node once, which Run relies on to verify an
// answer from each.
func (s *spreadTarget) dial() (conn, error) {
	i := int((s.next.Add(1) - 1) % uint64(len(s.ts)))
	c, err := s.ts[i].dial()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", s.addrs[i], err)
	}
	return c, nil
}
