package replicas

import (
	"github.com/featured-dev/featured/cluster"
)

// SourceOffset is how far this node applied one source's partition.
type SourceOffset struct {
	Source string `json:"source"`
	Topic  string `json:"topic"`
	// Reading says the consumer has positioned the partition; before that
	// the offsets are zeros.
	Reading bool `json:"reading"`
	// Next is the next offset to apply, High the partition's end offset as
	// last seen, Lag their difference.
	Next int64 `json:"next_offset"`
	High int64 `json:"high_watermark"`
	Lag  int64 `json:"lag"`
}

// Status is the cluster section of GET /v1/status.
type Status struct {
	Instance   string `json:"instance"`
	Generation int32  `json:"generation"`
	// Leader says this member balanced the current map.
	Leader      bool   `json:"leader"`
	Rebalances  uint64 `json:"rebalances"`
	GroupErrors uint64 `json:"group_errors"`
	Draining    bool   `json:"draining"`
	// Left says a drained node left the group: it holds nothing.
	Left       bool          `json:"left"`
	LeaveErr   string        `json:"leave_error,omitempty"`
	Members    []MemberState `json:"members"`
	Partitions []PartState   `json:"partitions"`
	// Forwarding is the router's counters (serving.RouterStats), when
	// SetForwarding gave a source.
	Forwarding any `json:"forwarding,omitempty"`
	// Handover counts restores and checkpoints, with a Handover.
	Handover *HandoverStats `json:"handover,omitempty"`
}

// MemberState is one member of the current map.
type MemberState struct {
	Instance  string `json:"instance"`
	Advertise string `json:"advertise"`
	Zone      string `json:"zone,omitempty"`
}

// PartState is one partition of the current map, and this node's part in
// it.
type PartState struct {
	Partition int `json:"partition"`
	// Role is this node's role: none, active, standby or warmup.
	Role     string   `json:"role"`
	Active   string   `json:"active"`
	Standbys []string `json:"standbys"`
	Warmups  []string `json:"warmups,omitempty"`
	// Local says reads of the partition are answered here; CaughtUp that
	// this node is within the acceptable recovery lag on every source.
	Local    bool `json:"local"`
	CaughtUp bool `json:"caught_up"`
	// LagRecords is the records behind on the most lagging source, -1
	// unknown; StalenessSeconds how long ago every source's end offset
	// was last reached, -1 unknown or beyond the staleness bound.
	LagRecords       int64          `json:"lag_records"`
	StalenessSeconds float64        `json:"staleness_seconds"`
	Offsets          []SourceOffset `json:"offsets,omitempty"`
}

// SetForwarding sets where Status reads the router's counters (the
// serving.Server made after the Keeper).
func (k *Keeper) SetForwarding(f func() any) {
	k.mu.Lock()
	k.mu.forwarding = f
	k.mu.Unlock()
}

// Status returns the owner map and this node's part in it.
func (k *Keeper) Status() Status {
	k.mu.Lock()
	m, fwd := k.mu.m, k.mu.forwarding
	st := Status{Instance: k.opts.Self, Draining: k.mu.draining, Left: k.mu.left, LeaveErr: k.mu.leaveErr}
	if k.opts.Handover != nil {
		hs := k.mu.handover
		st.Handover = &hs
	}
	k.mu.Unlock()
	if m != nil {
		ms := m.Stats()
		st.Generation, st.Leader, st.Rebalances, st.GroupErrors = ms.Generation, ms.Leader, ms.Rebalances, ms.GroupErrors
	}
	if fwd != nil {
		st.Forwarding = fwd()
	}
	t := k.table.Load()
	if t.om == nil {
		return st
	}
	names := func(idx []int) []string {
		out := make([]string, 0, len(idx))
		for _, i := range idx {
			out = append(out, t.om.Members[i].InstanceID)
		}
		return out
	}
	for _, mem := range t.om.Members {
		st.Members = append(st.Members, MemberState{Instance: mem.InstanceID, Advertise: mem.Advertise, Zone: mem.Zone})
	}
	for p, pl := range t.om.Parts {
		if p >= len(t.parts) {
			break
		}
		ps := t.parts[p]
		s := PartState{Partition: p, Role: t.roles[p].String(), Standbys: names(pl.Standbys), Warmups: names(pl.Warmups),
			Local: ps.local, CaughtUp: ps.caughtUp, LagRecords: ps.lag, StalenessSeconds: -1, Offsets: ps.sources}
		if pl.Active >= 0 {
			s.Active = t.om.Members[pl.Active].InstanceID
		}
		if ps.stale >= 0 {
			s.StalenessSeconds = ps.stale.Seconds()
		}
		st.Partitions = append(st.Partitions, s)
	}
	return st
}

// Roles returns this node's role per partition in the current map (none
// before the first), for metrics.
func (k *Keeper) Roles() []cluster.Role {
	return k.table.Load().roles
}

// Lags returns each partition's lag in records as the last Tick found it,
// -1 where unknown or not held, for metrics.
func (k *Keeper) Lags() []int64 {
	t := k.table.Load()
	out := make([]int64, len(t.parts))
	for p, ps := range t.parts {
		out[p] = ps.lag
		if t.roles[p] == cluster.RoleNone {
			out[p] = -1
		}
	}
	return out
}

// MembershipStats returns the member's counters (zeros before Run).
func (k *Keeper) MembershipStats() cluster.Stats {
	k.mu.Lock()
	m := k.mu.m
	k.mu.Unlock()
	if m == nil {
		return cluster.Stats{}
	}
	return m.Stats()
}

// HandoverStats returns the hand-over counters; ok is false without a
// Handover.
func (k *Keeper) HandoverStats() (s HandoverStats, ok bool) {
	if k.opts.Handover == nil {
		return HandoverStats{}, false
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.mu.handover, true
}
