package cluster

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
)

// MemberMeta is what a member tells the group leader in its JoinGroup: who
// it is, where it answers, what it holds caught up and what it did in the
// last map it saw. The balancer is a function of these alone (and of the
// leader's P, R and max warm-ups), so any member can lead.
type MemberMeta struct {
	InstanceID string
	Advertise  string
	Zone       string
	// Draining marks a member that is being emptied before it leaves: the
	// balancer places no new replica on it and moves its replicas away,
	// warm-ups first, so it keeps serving until their targets caught up.
	Draining bool
	// Partitions is the member's configured P; the leader places nothing on
	// a member whose P differs from its own.
	Partitions int
	// CaughtUp lists, ascending, the partitions the member holds within the
	// acceptable recovery lag of their end offsets.
	CaughtUp []int32
	// LastGeneration is the generation of the map Roles come from, 0 for
	// none.
	LastGeneration int32
	// Roles lists, by ascending partition, the member's roles in the last
	// map it saw, for stickiness.
	Roles []PartitionRole
}

// PartitionRole is a member's role in one partition.
type PartitionRole struct {
	Partition int32
	Role      Role
}

const memberMetaVersion = 1

// flagDraining is MemberMeta.Draining in the flags byte; other bits are
// refused, so a new flag needs a new version.
const flagDraining = 1

// Encode returns the metadata's compact, versioned encoding. Partition
// lists are delta-encoded uvarints, so a member holding a run of partitions
// costs about a byte per partition.
func (mm *MemberMeta) Encode() []byte {
	b := make([]byte, 0, 32+len(mm.InstanceID)+len(mm.Advertise)+len(mm.Zone)+len(mm.CaughtUp)+2*len(mm.Roles))
	b = append(b, memberMetaVersion)
	b = appendString(b, mm.InstanceID)
	b = appendString(b, mm.Advertise)
	b = appendString(b, mm.Zone)
	var flags byte
	if mm.Draining {
		flags |= flagDraining
	}
	b = append(b, flags)
	b = binary.AppendUvarint(b, uint64(mm.Partitions))
	b = binary.AppendUvarint(b, uint64(uint32(mm.LastGeneration)))
	b = binary.AppendUvarint(b, uint64(len(mm.CaughtUp)))
	prev := int32(-1)
	for _, p := range mm.CaughtUp {
		b = binary.AppendUvarint(b, uint64(p-prev-1))
		prev = p
	}
	b = binary.AppendUvarint(b, uint64(len(mm.Roles)))
	prev = -1
	for _, r := range mm.Roles {
		b = binary.AppendUvarint(b, uint64(r.Partition-prev-1))
		b = append(b, byte(r.Role))
		prev = r.Partition
	}
	return b
}

// DecodeMemberMeta decodes bytes made by MemberMeta.Encode, refusing other
// versions (ErrUnknownVersion) and malformed bytes (ErrCorrupt).
func DecodeMemberMeta(b []byte) (*MemberMeta, error) {
	if len(b) == 0 {
		return nil, fmt.Errorf("decode member metadata: empty: %w", ErrCorrupt)
	}
	if b[0] != memberMetaVersion {
		return nil, fmt.Errorf("decode member metadata: version %d: %w", b[0], ErrUnknownVersion)
	}
	d := decoder{b: b[1:]}
	mm := &MemberMeta{InstanceID: d.string(), Advertise: d.string(), Zone: d.string()}
	if d.err == nil {
		if len(d.b) == 0 {
			d.err = errors.New("truncated flags")
		} else if f := d.b[0]; f&^flagDraining != 0 {
			d.err = fmt.Errorf("unknown flags %#x", f)
		} else {
			mm.Draining = f&flagDraining != 0
			d.b = d.b[1:]
		}
	}
	mm.Partitions = int(d.uvarint(maxDecodedCount))
	mm.LastGeneration = int32(uint32(d.uvarint(1<<32 - 1)))
	n := int(d.uvarint(maxDecodedCount))
	if d.err == nil && n > len(d.b) {
		d.err = errors.New("truncated caught-up list")
	}
	prev := int64(-1)
	for i := 0; i < n && d.err == nil; i++ {
		p := prev + 1 + int64(d.uvarint(maxDecodedCount))
		if p >= int64(mm.Partitions) {
			d.err = fmt.Errorf("caught-up partition %d outside P=%d", p, mm.Partitions)
			break
		}
		mm.CaughtUp = append(mm.CaughtUp, int32(p))
		prev = p
	}
	n = int(d.uvarint(maxDecodedCount))
	if d.err == nil && 2*n > len(d.b) {
		d.err = errors.New("truncated role list")
	}
	prev = -1
	for i := 0; i < n && d.err == nil; i++ {
		p := prev + 1 + int64(d.uvarint(maxDecodedCount))
		if p >= int64(mm.Partitions) {
			d.err = fmt.Errorf("role of partition %d outside P=%d", p, mm.Partitions)
			break
		}
		if len(d.b) == 0 {
			d.err = errors.New("truncated role")
			break
		}
		r := Role(d.b[0])
		d.b = d.b[1:]
		if r == RoleNone || r > RoleWarmup {
			d.err = fmt.Errorf("partition %d: invalid role %d", p, r)
			break
		}
		mm.Roles = append(mm.Roles, PartitionRole{Partition: int32(p), Role: r})
		prev = p
	}
	if d.err == nil && len(d.b) > 0 {
		d.err = fmt.Errorf("%d trailing bytes", len(d.b))
	}
	if d.err != nil {
		return nil, fmt.Errorf("decode member metadata: %v: %w", d.err, ErrCorrupt)
	}
	return mm, nil
}

// metaFor builds the join metadata of instanceID from the last map it saw
// and the partitions it reports caught up (any order, duplicates and
// out-of-range partitions dropped).
func metaFor(self Member, partitions int, last *OwnerMap, caughtUp []int32, draining bool) *MemberMeta {
	mm := &MemberMeta{InstanceID: self.InstanceID, Advertise: self.Advertise, Zone: self.Zone, Draining: draining, Partitions: partitions}
	cu := slices.Clone(caughtUp)
	slices.Sort(cu)
	cu = slices.Compact(cu)
	for _, p := range cu {
		if p >= 0 && int(p) < partitions {
			mm.CaughtUp = append(mm.CaughtUp, p)
		}
	}
	if last != nil && last.Partitions == partitions {
		mm.LastGeneration = last.Generation
		roles := last.Roles(self.InstanceID)
		for p := range int32(partitions) {
			if r, ok := roles[p]; ok {
				mm.Roles = append(mm.Roles, PartitionRole{Partition: p, Role: r})
			}
		}
	}
	return mm
}
