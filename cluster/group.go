package cluster

import (
	"fmt"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// groupBalancer is featured-v1 as franz-go's GroupBalancer. It speaks the
// standard "consumer" protocol framing, so the broker and tools such as
// kafka-consumer-groups.sh read the group as any consumer group: the join
// metadata is a ConsumerMemberMetadata subscribing to the membership topic
// with our MemberMeta as UserData, the assignment a ConsumerMemberAssignment
// with no partitions and the OwnerMap as UserData (Kafka Streams carries
// SubscriptionInfo and AssignmentInfo the same way).
//
// The protocol is eager: the group consumes nothing, so the one cost of
// eager rebalancing (every member stops fetching its partitions while the
// group rebalances) does not apply, and cooperative rebalancing would only
// add a second join round whenever a member's assignment shrinks, plus a
// LeaveGroup on Close of a static member that revoked something.
type groupBalancer struct {
	m *Membership
}

var (
	_ kgo.GroupBalancer           = (*groupBalancer)(nil)
	_ kgo.GroupMemberBalancerInfo = (*memberBalancer)(nil)
)

func (g *groupBalancer) ProtocolName() string { return ProtocolName }

func (g *groupBalancer) IsCooperative() bool { return false }

// JoinGroupMetadata runs on the group client's goroutine at every join.
func (g *groupBalancer) JoinGroupMetadata(topics []string, _ map[string][]int32, _ int32) []byte {
	mm := g.m.joinMeta()
	g.m.noteJoined(mm)
	meta := kmsg.NewConsumerMemberMetadata()
	meta.Topics = topics
	meta.UserData = mm.Encode()
	return meta.AppendTo(nil)
}

// ParseSyncAssignment adopts the owner map in the assignment. It assigns no
// partition: the group is for membership only.
func (g *groupBalancer) ParseSyncAssignment(assignment []byte) (map[string][]int32, error) {
	var a kmsg.ConsumerMemberAssignment
	if err := a.ReadFrom(assignment); err != nil {
		return nil, fmt.Errorf("cluster: read assignment: %w", err)
	}
	om, err := DecodeOwnerMap(a.UserData)
	if err != nil {
		return nil, err
	}
	if om.Partitions != g.m.cfg.Partitions {
		return nil, fmt.Errorf("cluster: the group leader balanced %d partitions, this member has %d: %w", om.Partitions, g.m.cfg.Partitions, ErrInvalidConfig)
	}
	g.m.adopt(om)
	return map[string][]int32{}, nil
}

// MemberBalancer runs on the leader only, and not at all when a static
// leader restarts within the session timeout: the broker then returns the
// group's current assignment and, for a balancer it does not know, kgo
// skips balancing (KIP-814), so a restart causes no rebalance.
func (g *groupBalancer) MemberBalancer(members []kmsg.JoinGroupResponseMember) (kgo.GroupMemberBalancer, map[string]struct{}, error) {
	mb := &memberBalancer{m: g.m, members: members}
	for _, jm := range members {
		var meta kmsg.ConsumerMemberMetadata
		err := meta.ReadFrom(jm.ProtocolMetadata)
		var mm *MemberMeta
		if err == nil {
			mm, err = DecodeMemberMeta(meta.UserData)
		}
		if err == nil && mm.Partitions != g.m.cfg.Partitions {
			err = fmt.Errorf("partitions %d, the leader has %d", mm.Partitions, g.m.cfg.Partitions)
		}
		if err != nil {
			// One member of another version or P must not stop the group:
			// it gets a map that places nothing on it.
			g.m.cfg.Logger.Error("cluster: member left out of the owner map", "group", g.m.cfg.Group,
				"member_id", jm.MemberID, "instance_id", strp(jm.InstanceID), "err", err)
			continue
		}
		mb.metas = append(mb.metas, mm)
	}
	return mb, map[string]struct{}{g.m.topic: {}}, nil
}

type memberBalancer struct {
	m       *Membership
	members []kmsg.JoinGroupResponseMember
	metas   []*MemberMeta
	gen     int32
}

func (mb *memberBalancer) SetBalanceInfo(bi kgo.BalanceInfo) { mb.gen = bi.Generation }

func (mb *memberBalancer) Balance(map[string]int32) kgo.IntoSyncAssignment {
	m := mb.m
	om := Balance(BalanceInput{
		Generation: mb.gen,
		Partitions: m.cfg.Partitions,
		Standbys:   m.cfg.Standbys,
		MaxWarmups: m.cfg.MaxWarmups,
		Members:    mb.metas,
	})
	m.noteBalanced(mb.gen)
	a := kmsg.NewConsumerMemberAssignment()
	a.UserData = om.Encode()
	b := a.AppendTo(nil)
	out := make(syncAssignment, 0, len(mb.members))
	for _, jm := range mb.members {
		sa := kmsg.NewSyncGroupRequestGroupAssignment()
		sa.MemberID = jm.MemberID
		sa.MemberAssignment = b
		out = append(out, sa)
	}
	return out
}

type syncAssignment []kmsg.SyncGroupRequestGroupAssignment

func (s syncAssignment) IntoSyncAssignment() []kmsg.SyncGroupRequestGroupAssignment { return s }

func strp(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
