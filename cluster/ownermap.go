package cluster

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
)

// Role is what a member does for one partition.
type Role uint8

const (
	// RoleNone: the member does not hold the partition.
	RoleNone Role = iota
	// RoleActive: the member holds the partition, caught up, and owns its
	// duties (checkpoints, offline-log uploads, preferred for reads).
	RoleActive
	// RoleStandby: the member holds the partition, consumes it into its own
	// store and may answer reads within the staleness bound.
	RoleStandby
	// RoleWarmup: the member is restoring and replaying the partition so
	// that a later balance can make it active or standby; it does not count
	// as a replica and answers no reads.
	RoleWarmup
)

func (r Role) String() string {
	switch r {
	case RoleNone:
		return "none"
	case RoleActive:
		return "active"
	case RoleStandby:
		return "standby"
	case RoleWarmup:
		return "warmup"
	}
	return fmt.Sprintf("role(%d)", uint8(r))
}

// Member is one member of the group as the owner map names it.
type Member struct {
	// InstanceID is the member's group.instance.id (the pod name): the
	// member's identity across restarts.
	InstanceID string
	// Advertise is the member's advertised gRPC address (host:port).
	Advertise string
	// Zone is the member's zone, empty if it advertised none.
	Zone string
}

// Placement is one partition's replicas, as indexes into OwnerMap.Members.
type Placement struct {
	// Active is the active member, -1 if the partition has none (only in a
	// map without members).
	Active int
	// Standbys are the standby members, ascending.
	Standbys []int
	// Warmups are the members warming the partition up, ascending.
	Warmups []int
}

// OwnerMap is the group's decision of who holds which partition, written by
// the balancer into every member's assignment. A map is immutable once
// built: Membership hands the same *OwnerMap to every reader.
type OwnerMap struct {
	// Generation is the group generation the map was balanced for; a
	// larger generation supersedes a smaller one.
	Generation int32
	// Partitions is the cluster's partition count P.
	Partitions int
	// Members are the members the map places replicas on, sorted by
	// instance ID.
	Members []Member
	// Parts has one Placement per partition, indexed by partition.
	Parts []Placement
}

// ownerMapVersion is the first byte of an encoded OwnerMap. A decoder
// refuses any other: a member of an older binary must not act on a map it
// cannot read completely.
const ownerMapVersion = 1

// maxDecodedCount caps every count read from encoded bytes, so corrupt or
// hostile input cannot make the decoder allocate much.
const maxDecodedCount = 1 << 16

// Sentinel errors of the package.
var (
	// ErrUnknownVersion is returned by the decoders for bytes of a format
	// version this binary does not know.
	ErrUnknownVersion = errors.New("cluster: unknown encoding version")
	// ErrCorrupt is returned by the decoders for bytes that are not a
	// valid encoding.
	ErrCorrupt = errors.New("cluster: corrupt encoding")
)

// Replicas returns the members holding partition p as replicas: the active
// first, then the standbys. Warm-ups are not replicas. It returns nil for a
// partition outside the map.
func (m *OwnerMap) Replicas(p int32) []Member {
	if m == nil || p < 0 || int(p) >= len(m.Parts) {
		return nil
	}
	pl := m.Parts[p]
	out := make([]Member, 0, 1+len(pl.Standbys))
	if pl.Active >= 0 {
		out = append(out, m.Members[pl.Active])
	}
	for _, s := range pl.Standbys {
		out = append(out, m.Members[s])
	}
	return out
}

// Roles returns the role of the member with the given instance ID in every
// partition it holds (partitions it does not hold are absent).
func (m *OwnerMap) Roles(instanceID string) map[int32]Role {
	out := make(map[int32]Role)
	if m == nil {
		return out
	}
	idx := m.memberIndex(instanceID)
	if idx < 0 {
		return out
	}
	for p, pl := range m.Parts {
		switch {
		case pl.Active == idx:
			out[int32(p)] = RoleActive
		case slices.Contains(pl.Standbys, idx):
			out[int32(p)] = RoleStandby
		case slices.Contains(pl.Warmups, idx):
			out[int32(p)] = RoleWarmup
		}
	}
	return out
}

// Member returns the member with the given instance ID and whether the map
// names it.
func (m *OwnerMap) Member(instanceID string) (Member, bool) {
	if i := m.memberIndex(instanceID); i >= 0 {
		return m.Members[i], true
	}
	return Member{}, false
}

func (m *OwnerMap) memberIndex(instanceID string) int {
	if m == nil {
		return -1
	}
	i, ok := slices.BinarySearchFunc(m.Members, instanceID, func(a Member, id string) int {
		switch {
		case a.InstanceID < id:
			return -1
		case a.InstanceID > id:
			return 1
		}
		return 0
	})
	if !ok {
		return -1
	}
	return i
}

// Validate checks the map's invariants: members sorted and unique, one
// placement per partition, indexes in range, no member twice in one
// partition, an active wherever there are members.
func (m *OwnerMap) Validate() error {
	if m.Partitions < 1 || m.Partitions > maxDecodedCount {
		return fmt.Errorf("partitions %d: out of range [1, %d]", m.Partitions, maxDecodedCount)
	}
	if len(m.Parts) != m.Partitions {
		return fmt.Errorf("%d placements for %d partitions", len(m.Parts), m.Partitions)
	}
	for i := 1; i < len(m.Members); i++ {
		if m.Members[i-1].InstanceID >= m.Members[i].InstanceID {
			return fmt.Errorf("members[%d] %q: not sorted after %q or a duplicate", i, m.Members[i].InstanceID, m.Members[i-1].InstanceID)
		}
	}
	n := len(m.Members)
	seen := make([]int32, n) // partition+1 that last saw the member
	for p, pl := range m.Parts {
		mark := func(what string, idx int) error {
			if idx < 0 || idx >= n {
				return fmt.Errorf("partition %d: %s member %d out of range [0, %d)", p, what, idx, n)
			}
			if seen[idx] == int32(p)+1 {
				return fmt.Errorf("partition %d: member %q holds two roles", p, m.Members[idx].InstanceID)
			}
			seen[idx] = int32(p) + 1
			return nil
		}
		if pl.Active < 0 {
			if n > 0 || len(pl.Standbys) > 0 || len(pl.Warmups) > 0 {
				return fmt.Errorf("partition %d: no active", p)
			}
			continue
		}
		if err := mark("active", pl.Active); err != nil {
			return err
		}
		for _, s := range pl.Standbys {
			if err := mark("standby", s); err != nil {
				return err
			}
		}
		for _, w := range pl.Warmups {
			if err := mark("warm-up", w); err != nil {
				return err
			}
		}
	}
	return nil
}

// Encode returns the map's compact, versioned encoding: a version byte,
// then uvarints and length-prefixed strings (format in doc.go).
func (m *OwnerMap) Encode() []byte {
	b := make([]byte, 0, 16+len(m.Members)*32+len(m.Parts)*4)
	b = append(b, ownerMapVersion)
	b = binary.AppendUvarint(b, uint64(uint32(m.Generation)))
	b = binary.AppendUvarint(b, uint64(m.Partitions))
	b = binary.AppendUvarint(b, uint64(len(m.Members)))
	for _, mb := range m.Members {
		b = appendString(b, mb.InstanceID)
		b = appendString(b, mb.Advertise)
		b = appendString(b, mb.Zone)
	}
	for _, pl := range m.Parts {
		b = binary.AppendUvarint(b, uint64(pl.Active+1))
		b = appendInts(b, pl.Standbys)
		b = appendInts(b, pl.Warmups)
	}
	return b
}

// DecodeOwnerMap decodes bytes made by Encode. It returns ErrUnknownVersion
// for another format version and ErrCorrupt (wrapped, with the reason) for
// bytes that are truncated, trail, or break the map's invariants.
func DecodeOwnerMap(b []byte) (*OwnerMap, error) {
	if len(b) == 0 {
		return nil, fmt.Errorf("decode owner map: empty: %w", ErrCorrupt)
	}
	if b[0] != ownerMapVersion {
		return nil, fmt.Errorf("decode owner map: version %d: %w", b[0], ErrUnknownVersion)
	}
	d := decoder{b: b[1:]}
	m := &OwnerMap{
		Generation: int32(uint32(d.uvarint(1<<32 - 1))),
		Partitions: int(d.uvarint(maxDecodedCount)),
	}
	nm := int(d.uvarint(maxDecodedCount))
	if d.err == nil {
		m.Members = make([]Member, 0, min(nm, len(d.b)))
	}
	for i := 0; i < nm && d.err == nil; i++ {
		m.Members = append(m.Members, Member{InstanceID: d.string(), Advertise: d.string(), Zone: d.string()})
	}
	if d.err == nil {
		m.Parts = make([]Placement, 0, min(m.Partitions, len(d.b)))
	}
	for p := 0; p < m.Partitions && d.err == nil; p++ {
		pl := Placement{Active: int(d.uvarint(maxDecodedCount)) - 1}
		pl.Standbys = d.ints()
		pl.Warmups = d.ints()
		m.Parts = append(m.Parts, pl)
	}
	if d.err == nil && len(d.b) > 0 {
		d.err = fmt.Errorf("%d trailing bytes", len(d.b))
	}
	if d.err == nil {
		d.err = m.Validate()
	}
	if d.err != nil {
		return nil, fmt.Errorf("decode owner map: %v: %w", d.err, ErrCorrupt)
	}
	return m, nil
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendInts(b []byte, xs []int) []byte {
	b = binary.AppendUvarint(b, uint64(len(xs)))
	for _, x := range xs {
		b = binary.AppendUvarint(b, uint64(x))
	}
	return b
}

// decoder reads uvarints and strings, remembering the first error so that
// callers check once at the end.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) uvarint(max uint64) uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 || (n > 1 && d.b[n-1] == 0) {
		// Overlong forms are refused too, so that every value has one
		// encoding: a restarted leader's map must re-encode byte for byte.
		d.err = errors.New("truncated or overlong uvarint")
		return 0
	}
	if v > max {
		d.err = fmt.Errorf("value %d exceeds %d", v, max)
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) string() string {
	n := d.uvarint(maxDecodedCount)
	if d.err != nil {
		return ""
	}
	if uint64(len(d.b)) < n {
		d.err = errors.New("truncated string")
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}

func (d *decoder) ints() []int {
	n := int(d.uvarint(maxDecodedCount))
	if d.err != nil || n == 0 {
		return nil
	}
	if n > len(d.b) { // every int takes at least one byte
		d.err = errors.New("truncated list")
		return nil
	}
	xs := make([]int, n)
	for i := range xs {
		xs[i] = int(d.uvarint(maxDecodedCount))
	}
	return xs
}
