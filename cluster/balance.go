package cluster

import (
	"cmp"
	"slices"
)

// BalanceInput is everything the featured-v1 balancer decides from. The
// balancer is a pure function of it: the same input gives the same map, on
// any member.
type BalanceInput struct {
	// Generation is the group generation being balanced; it becomes the
	// map's Generation.
	Generation int32
	// Partitions is P, the leader's partition count, at least 1. Members
	// reporting another P are left out of the map.
	Partitions int
	// Standbys is R, the standbys wanted per partition; the balancer places
	// min(R, members-1).
	Standbys int
	// MaxWarmups caps the warm-ups placed on one member at once; values
	// below 1 count as 1, since without warm-ups a partition could never
	// move to a member that does not hold it yet.
	MaxWarmups int
	// Members is every member's join metadata, in any order.
	Members []*MemberMeta
}

// Balance computes the owner map for in, in two steps.
//
// The target is the placement the group should converge to: actives
// balanced per member (floor or ceil of P/n), then all replicas balanced
// per member, standbys on members distinct from the active and in distinct
// zones while unused zones remain; sticky, so a replica stays where the
// last map put it unless balance needs it elsewhere; new replicas go first
// to members that report the partition caught up or held it last time.
//
// The map then protects caught-up replicas (KIP-441): a target member that
// is not caught up on a partition does not replace a caught-up holder. The
// holder keeps its role and the target gets a warm-up (at most MaxWarmups
// per member: warm-ups already under way first, then actives, then
// standbys). When a partition's active is gone, its caught-up standby is
// promoted. A partition nobody reports caught up is placed on its target
// directly: there is nothing better to protect.
func Balance(in BalanceInput) *OwnerMap {
	b := newBalancer(in)
	b.targetActives()
	b.targetStandbys()
	b.repairStandbys()
	return b.place()
}

type balancer struct {
	in       BalanceInput
	members  []*MemberMeta
	n, parts int
	eligible []bool // [member] may be a target: not draining (or all are)
	nTarget  int    // eligible members
	r        int
	warmCap  int

	caught    [][]bool // [member][partition]
	prevRole  [][]Role // [member][partition], a stale "active" demoted to standby
	prevAct   []int    // [partition] previous active member, -1 if none present
	anyCaught []bool   // [partition] some member reports it caught up

	// The target, built by targetActives, targetStandbys, repairStandbys.
	tAct  []int   // [partition]
	tStby [][]int // [partition]
	acts  []int   // [member] target actives
	load  []int   // [member] target replicas (active + standby)
}

func newBalancer(in BalanceInput) *balancer {
	var ms []*MemberMeta
	for _, m := range in.Members {
		if m != nil && m.InstanceID != "" && m.Partitions == in.Partitions {
			ms = append(ms, m)
		}
	}
	// Sorted by instance ID, the newest report first on a duplicate (the
	// broker fences duplicates; this only keeps the output a function of
	// the input).
	slices.SortStableFunc(ms, func(a, b *MemberMeta) int {
		if c := cmp.Compare(a.InstanceID, b.InstanceID); c != 0 {
			return c
		}
		return cmp.Compare(b.LastGeneration, a.LastGeneration)
	})
	ms = slices.CompactFunc(ms, func(a, b *MemberMeta) bool { return a.InstanceID == b.InstanceID })

	b := &balancer{in: in, members: ms, n: len(ms), parts: in.Partitions}
	b.eligible = make([]bool, b.n)
	for i, m := range ms {
		if !m.Draining {
			b.eligible[i] = true
			b.nTarget++
		}
	}
	if b.nTarget == 0 {
		// Everyone draining: someone must hold the partitions.
		for i := range b.eligible {
			b.eligible[i] = true
		}
		b.nTarget = b.n
	}
	b.r = min(max(in.Standbys, 0), max(b.nTarget-1, 0))
	b.warmCap = max(in.MaxWarmups, 1)
	b.caught = make([][]bool, b.n)
	b.prevRole = make([][]Role, b.n)
	b.prevAct = make([]int, b.parts)
	b.anyCaught = make([]bool, b.parts)
	actGen := make([]int32, b.parts)
	for p := range b.prevAct {
		b.prevAct[p] = -1
	}
	for i, m := range ms {
		b.caught[i] = make([]bool, b.parts)
		for _, p := range m.CaughtUp {
			if p >= 0 && int(p) < b.parts {
				b.caught[i][p] = true
				b.anyCaught[p] = true
			}
		}
		b.prevRole[i] = make([]Role, b.parts)
		for _, pr := range m.Roles {
			if pr.Partition < 0 || int(pr.Partition) >= b.parts {
				continue
			}
			b.prevRole[i][pr.Partition] = pr.Role
			// Two members claiming one active: the newer map wins, then
			// the lower index (members are sorted).
			if pr.Role == RoleActive && (b.prevAct[pr.Partition] < 0 || m.LastGeneration > actGen[pr.Partition]) {
				b.prevAct[pr.Partition] = i
				actGen[pr.Partition] = m.LastGeneration
			}
		}
	}
	for i := range ms {
		for p := range b.parts {
			if b.prevRole[i][p] == RoleActive && b.prevAct[p] != i {
				b.prevRole[i][p] = RoleStandby
			}
		}
	}
	b.tAct = make([]int, b.parts)
	b.tStby = make([][]int, b.parts)
	b.acts = make([]int, b.n)
	b.load = make([]int, b.n)
	return b
}

// quota hands out `total` items to n members so that each gets floor or
// ceil of total/n: a member may go past the floor only while fewer than
// total mod n members did.
type quota struct {
	lo, rem, high int
}

func newQuota(total, n int, counts []int) quota {
	q := quota{lo: total / n, rem: total % n}
	for _, c := range counts {
		if c > q.lo {
			q.high++
		}
	}
	return q
}

func (q *quota) fits(count int) bool {
	return count < q.lo || (count == q.lo && q.high < q.rem)
}

func (q *quota) take(count int) {
	if count == q.lo {
		q.high++
	}
}

func (b *balancer) holds(i, p int) bool { return b.prevRole[i][p] != RoleNone }

// holdRank ranks what member i was for p in the last map, as a standby
// candidate: its standby 0, its active 1, anything else 2.
func (b *balancer) holdRank(p, i int) int {
	switch b.prevRole[i][p] {
	case RoleStandby:
		return 0
	case RoleActive:
		return 1
	}
	return 2
}

func (b *balancer) targetActives() {
	if b.n == 0 {
		for p := range b.tAct {
			b.tAct[p] = -1
		}
		return
	}
	q := newQuota(b.parts, b.nTarget, b.acts)
	assign := func(p, i int) {
		q.take(b.acts[i])
		b.acts[i]++
		b.load[i]++
		b.tAct[p] = i
	}
	for p := range b.parts {
		b.tAct[p] = -1
		if a := b.prevAct[p]; a >= 0 && b.eligible[a] && q.fits(b.acts[a]) {
			assign(p, a)
		}
	}
	for p := range b.parts {
		if b.tAct[p] >= 0 {
			continue
		}
		best := -1
		for i := range b.n {
			if !b.eligible[i] || !q.fits(b.acts[i]) {
				continue
			}
			if best < 0 || b.betterActive(p, i, best) {
				best = i
			}
		}
		assign(p, best) // the quota always leaves room: it sums to P
	}
}

// betterActive orders candidates for a partition's new active: caught up,
// then a former holder (a standby to promote), then the fewest actives,
// then the lower index.
func (b *balancer) betterActive(p, i, j int) bool {
	if b.caught[i][p] != b.caught[j][p] {
		return b.caught[i][p]
	}
	if b.holds(i, p) != b.holds(j, p) {
		return b.holds(i, p)
	}
	if b.acts[i] != b.acts[j] {
		return b.acts[i] < b.acts[j]
	}
	return i < j
}

// zoneUse counts p's target replicas in member i's zone; members without a
// zone never collide.
func (b *balancer) zoneUse(p, i int) int {
	z := b.members[i].Zone
	if z == "" {
		return 0
	}
	c := 0
	if a := b.tAct[p]; a >= 0 && b.members[a].Zone == z {
		c++
	}
	for _, s := range b.tStby[p] {
		if b.members[s].Zone == z {
			c++
		}
	}
	return c
}

func (b *balancer) isReplica(p, i int) bool {
	return b.tAct[p] == i || slices.Contains(b.tStby[p], i)
}

func (b *balancer) targetStandbys() {
	if b.r == 0 {
		return
	}
	q := newQuota(b.parts*(1+b.r), b.nTarget, b.load)
	add := func(p, i int) {
		q.take(b.load[i])
		b.load[i]++
		b.tStby[p] = append(b.tStby[p], i)
	}
	// best is p's best candidate for one more standby now.
	best := func(p int) int {
		c := -1
		for i := range b.n {
			if b.eligible[i] && !b.isReplica(p, i) && (c < 0 || b.betterStandby(p, i, c, &q)) {
				c = i
			}
		}
		return c // r <= nTarget-1 leaves an eligible member that is not a replica
	}
	// Sticky first: a slot whose best candidate held the partition takes
	// it before any partition's fill can use up that member's room.
	for p := range b.parts {
		for len(b.tStby[p]) < b.r {
			c := best(p)
			if b.holdRank(p, c) == 2 {
				break
			}
			add(p, c)
		}
	}
	for p := range b.parts {
		for len(b.tStby[p]) < b.r {
			add(p, best(p))
		}
	}
}

// betterStandby orders candidates for a standby: an unused zone, room in
// the balance, the last map's standby, its active, caught up, the lightest
// load, the lower index.
func (b *balancer) betterStandby(p, i, j int, q *quota) bool {
	if zi, zj := b.zoneUse(p, i), b.zoneUse(p, j); zi != zj {
		return zi < zj
	}
	if fi, fj := q.fits(b.load[i]), q.fits(b.load[j]); fi != fj {
		return fi
	}
	if hi, hj := b.holdRank(p, i), b.holdRank(p, j); hi != hj {
		return hi < hj
	}
	if b.caught[i][p] != b.caught[j][p] {
		return b.caught[i][p]
	}
	if b.load[i] != b.load[j] {
		return b.load[i] < b.load[j]
	}
	return i < j
}

// repairStandbys moves standbys from more to less loaded members while
// two differ by more than one and zones allow. The greedy fill can be
// forced past the balance at the last partitions (every member with room
// already a replica there), and zones can force members past it.
func (b *balancer) repairStandbys() {
	if b.r == 0 {
		return
	}
	var order []int
	for moved := true; moved; {
		moved = false
		order = order[:0]
		for i := range b.n {
			if b.eligible[i] {
				order = append(order, i)
			}
		}
		slices.SortStableFunc(order, func(i, j int) int { return cmp.Compare(b.load[j], b.load[i]) })
	pairs:
		for _, hi := range order {
			for k := len(order) - 1; k >= 0; k-- {
				lo := order[k]
				if b.load[hi]-b.load[lo] <= 1 {
					break
				}
				if b.moveStandby(hi, lo) {
					moved = true
					break pairs
				}
			}
		}
	}
}

func (b *balancer) moveStandby(from, to int) bool {
	for p := range b.parts {
		k := slices.Index(b.tStby[p], from)
		if k < 0 || b.isReplica(p, to) {
			continue
		}
		if !b.zoneMoveOK(p, from, to) {
			continue
		}
		b.tStby[p][k] = to
		b.load[from]--
		b.load[to]++
		return true
	}
	return false
}

// zoneMoveOK reports whether moving p's standby from one member to another
// keeps p's replicas spread over zones at least as evenly, as the fill
// would have spread them.
func (b *balancer) zoneMoveOK(p, from, to int) bool {
	zf, zt := b.members[from].Zone, b.members[to].Zone
	switch {
	case zf == zt:
		return true
	case zf == "":
		return b.zoneUse(p, to) == 0
	}
	return b.zoneUse(p, to) < b.zoneUse(p, from)
}

// warmReq is a target member that is not caught up on a partition and
// whose slot a caught-up holder keeps meanwhile.
type warmReq struct {
	p, member int
	rank      int // 0 a warm-up under way, 1 an active target, 2 a standby target
}

// place turns the target into the map, keeping caught-up holders in place
// of targets that are not caught up and giving those targets warm-ups.
func (b *balancer) place() *OwnerMap {
	m := &OwnerMap{Generation: b.in.Generation, Partitions: b.parts, Parts: make([]Placement, b.parts)}
	for _, mm := range b.members {
		m.Members = append(m.Members, Member{InstanceID: mm.InstanceID, Advertise: mm.Advertise, Zone: mm.Zone})
	}
	var reqs []warmReq
	for p := range b.parts {
		pl := &m.Parts[p]
		pl.Active = b.tAct[p]
		if pl.Active < 0 {
			continue
		}
		ready := func(i int) bool { return !b.anyCaught[p] || b.caught[i][p] }
		// Caught-up members outside the target, by how much they held:
		// the last active, its standbys, its warm-ups, others.
		var keepers []int
		for i := range b.n {
			if b.caught[i][p] && !b.isReplica(p, i) {
				keepers = append(keepers, i)
			}
		}
		slices.SortStableFunc(keepers, func(i, j int) int { return cmp.Compare(b.keepRank(p, i), b.keepRank(p, j)) })

		var stby, notReady []int
		for _, s := range b.tStby[p] {
			if ready(s) {
				stby = append(stby, s)
			} else {
				notReady = append(notReady, s)
			}
		}
		activeTargetWaits := false
		if !ready(b.tAct[p]) {
			// Promote the caught-up holder the last map preferred.
			cands := append(slices.Clone(stby), keepers...)
			best := cands[0] // anyCaught[p]: a caught-up member is a target standby or a keeper
			for _, c := range cands[1:] {
				if b.keepRank(p, c) < b.keepRank(p, best) {
					best = c
				}
			}
			pl.Active = best
			stby = slices.DeleteFunc(stby, func(i int) bool { return i == best })
			keepers = slices.DeleteFunc(keepers, func(i int) bool { return i == best })
			notReady = append([]int{b.tAct[p]}, notReady...)
			activeTargetWaits = true
		}
		// Fill the standby slots: caught-up targets, then keepers, then
		// (with no caught-up member left) the waiting targets themselves.
		for len(stby) < b.r && len(keepers) > 0 {
			stby = append(stby, keepers[0])
			keepers = keepers[1:]
		}
		var waiting []int
		for _, t := range notReady {
			if len(stby) < b.r {
				stby = append(stby, t)
				continue
			}
			waiting = append(waiting, t)
		}
		// Sorted: the roles members report carry no order, so any other
		// order would not survive a rebalance.
		slices.Sort(stby)
		pl.Standbys = stby
		for _, t := range waiting {
			rank := 2
			if activeTargetWaits && t == b.tAct[p] {
				rank = 1
			}
			if b.prevRole[t][p] == RoleWarmup {
				rank = 0
			}
			reqs = append(reqs, warmReq{p: p, member: t, rank: rank})
		}
	}
	slices.SortStableFunc(reqs, func(a, c warmReq) int {
		if x := cmp.Compare(a.rank, c.rank); x != 0 {
			return x
		}
		return cmp.Compare(a.p, c.p)
	})
	warm := make([]int, b.n)
	for _, rq := range reqs {
		if warm[rq.member] < b.warmCap {
			warm[rq.member]++
			m.Parts[rq.p].Warmups = append(m.Parts[rq.p].Warmups, rq.member)
		}
	}
	for p := range m.Parts {
		slices.Sort(m.Parts[p].Warmups)
	}
	return m
}

func (b *balancer) keepRank(p, i int) int {
	switch {
	case b.prevAct[p] == i:
		return 0
	case b.prevRole[i][p] == RoleStandby:
		return 1
	case b.prevRole[i][p] == RoleWarmup:
		return 2
	}
	return 3
}
