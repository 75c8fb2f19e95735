package cluster

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// world is a balancer's view of a group over successive balances: members,
// the last map, and what each member reports caught up.
type world struct {
	p, r, warm int
	members    []Member
	last       *OwnerMap
	gen        int32
	caught     func(id string) []int32 // nil: nothing caught up
	draining   map[string]bool
}

func members(n int, zones ...string) []Member {
	var ms []Member
	for i := range n {
		m := Member{InstanceID: fmt.Sprintf("m%02d", i), Advertise: fmt.Sprintf("10.0.0.%d:9000", i)}
		if len(zones) > 0 {
			m.Zone = zones[i%len(zones)]
		}
		ms = append(ms, m)
	}
	return ms
}

func (w *world) input() BalanceInput {
	w.gen++
	in := BalanceInput{Generation: w.gen, Partitions: w.p, Standbys: w.r, MaxWarmups: w.warm}
	for _, m := range w.members {
		var cu []int32
		if w.caught != nil {
			cu = w.caught(m.InstanceID)
		}
		in.Members = append(in.Members, metaFor(m, w.p, w.last, cu, w.draining[m.InstanceID]))
	}
	return in
}

// step balances once and checks the invariants every map must keep.
func (w *world) step(t testing.TB) *OwnerMap {
	t.Helper()
	in := w.input()
	m := Balance(in)
	checkMap(t, in, m)
	w.last = m
	return m
}

// holding reports, as caught up, every partition a member holds in the
// last map, warm-ups included: warm-ups catch up at once.
func (w *world) holding(id string) []int32 {
	var ps []int32
	for p := range w.last.Roles(id) {
		ps = append(ps, p)
	}
	slices.Sort(ps)
	return ps
}

// checkMap asserts the invariants of any map Balance returns.
func checkMap(t testing.TB, in BalanceInput, m *OwnerMap) {
	t.Helper()
	if err := m.Validate(); err != nil {
		t.Fatalf("invalid map: %v", err)
	}
	n := len(m.Members)
	targets := 0 // members not draining, or all if all are
	for _, mm := range in.Members {
		if _, ok := m.Member(mm.InstanceID); ok && !mm.Draining {
			targets++
		}
	}
	if targets == 0 {
		targets = n
	}
	r := min(in.Standbys, max(targets-1, 0))
	caught := map[string]map[int32]bool{}
	for _, mm := range in.Members {
		caught[mm.InstanceID] = map[int32]bool{}
		for _, p := range mm.CaughtUp {
			caught[mm.InstanceID][p] = true
		}
	}
	warm := make([]int, n)
	for p, pl := range m.Parts {
		if n == 0 {
			continue
		}
		if pl.Active < 0 || len(pl.Standbys) != r {
			t.Fatalf("partition %d: active %d, %d standbys, want one and %d", p, pl.Active, len(pl.Standbys), r)
		}
		// Caught-up replicas are kept: as many as fit.
		nCaught, repCaught := 0, 0
		for _, mb := range m.Members {
			if caught[mb.InstanceID][int32(p)] {
				nCaught++
			}
		}
		for _, i := range append([]int{pl.Active}, pl.Standbys...) {
			if caught[m.Members[i].InstanceID][int32(p)] {
				repCaught++
			}
		}
		if want := min(1+r, nCaught); repCaught != want {
			t.Fatalf("partition %d: %d caught-up replicas, want %d (of %d caught up)", p, repCaught, want, nCaught)
		}
		if nCaught > 0 && !caught[m.Members[pl.Active].InstanceID][int32(p)] {
			t.Fatalf("partition %d: active %s is not caught up while %d members are", p, m.Members[pl.Active].InstanceID, nCaught)
		}
		for _, w := range pl.Warmups {
			warm[w]++
		}
	}
	for i, c := range warm {
		if c > max(in.MaxWarmups, 1) {
			t.Fatalf("member %s: %d warm-ups, max %d", m.Members[i].InstanceID, c, in.MaxWarmups)
		}
	}
}

// checkBalanced asserts actives and replicas per member differ by at most
// one between members.
func checkBalanced(t *testing.T, m *OwnerMap) {
	t.Helper()
	acts, reps := counts(m)
	if len(acts) == 0 {
		return
	}
	if lo, hi := slices.Min(acts), slices.Max(acts); hi-lo > 1 {
		t.Fatalf("actives per member %v: unbalanced", acts)
	}
	if lo, hi := slices.Min(reps), slices.Max(reps); hi-lo > 1 {
		t.Fatalf("replicas per member %v: unbalanced", reps)
	}
}

func counts(m *OwnerMap) (acts, reps []int) {
	acts = make([]int, len(m.Members))
	reps = make([]int, len(m.Members))
	for _, pl := range m.Parts {
		if pl.Active < 0 {
			continue
		}
		acts[pl.Active]++
		reps[pl.Active]++
		for _, s := range pl.Standbys {
			reps[s]++
		}
	}
	return acts, reps
}

func warmups(m *OwnerMap) int {
	c := 0
	for _, pl := range m.Parts {
		c += len(pl.Warmups)
	}
	return c
}

// converge balances, every member reporting what it holds as caught up,
// until a map has no warm-ups and the next balance moves nothing, and
// returns that map.
func (w *world) converge(t testing.TB) *OwnerMap {
	t.Helper()
	w.caught = w.holding
	limit := 2*w.p*(1+w.r) + 4
	var prev *OwnerMap
	for range limit {
		m := w.step(t)
		if prev != nil && warmups(m) == 0 && samePlacement(prev, m) {
			return m
		}
		prev = m
	}
	t.Fatalf("no fixpoint after %d balances", limit)
	return nil
}

func samePlacement(a, b *OwnerMap) bool {
	x, y := *a, *b
	x.Generation, y.Generation = 0, 0
	return bytes.Equal(x.Encode(), y.Encode())
}

func TestBalanceFirstMap(t *testing.T) {
	for n := 1; n <= 10; n++ {
		for _, p := range []int{1, 7, 256} {
			for _, r := range []int{0, 1, 2} {
				t.Run(fmt.Sprintf("n=%d/P=%d/R=%d", n, p, r), func(t *testing.T) {
					w := &world{p: p, r: r, warm: 2, members: members(n)}
					m := w.step(t)
					if warmups(m) != 0 {
						t.Fatalf("first map of an empty cluster has %d warm-ups", warmups(m))
					}
					checkBalanced(t, m)
					for pp := range p {
						if got := len(m.Replicas(int32(pp))); got != 1+min(r, n-1) {
							t.Fatalf("partition %d: %d replicas, want %d", pp, got, 1+min(r, n-1))
						}
					}
				})
			}
		}
	}
}

func TestBalanceStandbysCappedAtMembersMinusOne(t *testing.T) {
	w := &world{p: 12, r: 5, warm: 2, members: members(3)}
	m := w.step(t)
	for p, pl := range m.Parts {
		if len(pl.Standbys) != 2 {
			t.Fatalf("partition %d: %d standbys with 3 members and R=5, want 2", p, len(pl.Standbys))
		}
	}
	w = &world{p: 4, r: 1, warm: 2, members: members(1)}
	m = w.step(t)
	for p, pl := range m.Parts {
		if pl.Active != 0 || len(pl.Standbys) != 0 {
			t.Fatalf("partition %d: %+v, want the only member active and no standby", p, pl)
		}
	}
}

func TestBalanceZones(t *testing.T) {
	f := func(n, r int, zones ...string) {
		t.Helper()
		w := &world{p: 64, r: r, warm: 2, members: members(n, zones...)}
		m := w.step(t)
		distinct := min(1+r, len(zones))
		for p := range m.Parts {
			seen := map[string]bool{}
			for _, mb := range m.Replicas(int32(p)) {
				seen[mb.Zone] = true
			}
			if len(seen) < distinct {
				t.Fatalf("n=%d R=%d zones %v: partition %d has replicas in %d zones, want %d", n, r, zones, p, len(seen), distinct)
			}
		}
		checkBalanced(t, m)
	}
	f(4, 1, "a", "b")
	f(6, 2, "a", "b", "c")
	f(6, 1, "a", "b", "c")
	f(9, 2, "a", "b", "c")
	f(5, 2, "a", "b") // fewer zones than replicas: spread over both
}

func TestBalanceDeterministic(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	w := &world{p: 100, r: 1, warm: 2, members: members(7, "a", "b", "c")}
	w.converge(t)
	w.members = append(w.members[:2:2], w.members[3:]...) // one gone
	in := w.input()
	want := Balance(in).Encode()
	for range 20 {
		rng.Shuffle(len(in.Members), func(i, j int) { in.Members[i], in.Members[j] = in.Members[j], in.Members[i] })
		if got := Balance(in).Encode(); !bytes.Equal(got, want) {
			t.Fatal("the same members in another order give another map")
		}
	}
}

func TestBalanceStickyRejoin(t *testing.T) {
	for _, n := range []int{1, 2, 3, 4, 10} {
		w := &world{p: 256, r: 1, warm: 2, members: members(n, "a", "b")}
		first := w.converge(t)
		for range 3 {
			if m := w.step(t); !samePlacement(first, m) {
				t.Fatalf("n=%d: a rebalance with the same members moved replicas", n)
			}
		}
	}
}

func TestBalanceJoinWarmsUpFirst(t *testing.T) {
	w := &world{p: 12, r: 1, warm: 2, members: members(3)}
	before := w.converge(t)

	// m03 joins holding nothing; the others report what they hold.
	w.members = members(4)
	w.caught = func(id string) []int32 {
		if id == "m03" {
			return nil
		}
		return w.holding(id)
	}
	m := w.step(t)
	for p := range m.Parts {
		if !slices.Equal(names(before.Replicas(int32(p))), names(m.Replicas(int32(p)))) {
			t.Fatalf("partition %d: replicas %v moved to %v before the new member caught up", p, names(before.Replicas(int32(p))), names(m.Replicas(int32(p))))
		}
	}
	roles := m.Roles("m03")
	if len(roles) != 2 {
		t.Fatalf("new member's roles %v, want 2 warm-ups (max-warmups)", roles)
	}
	for p, r := range roles {
		if r != RoleWarmup {
			t.Fatalf("new member: partition %d %s, want warmup", p, r)
		}
	}

	// Warm-ups catch up; the actives move to the new member and no other
	// active moves.
	w.caught = w.holding
	m = w.step(t)
	for p := range roles {
		if m.Roles("m03")[p] != RoleActive {
			t.Fatalf("partition %d: m03 warmed it up but is %s", p, m.Roles("m03")[p])
		}
	}
	final := w.converge(t)
	checkBalanced(t, final)
	moved := 0
	for p := range final.Parts {
		a0 := before.Members[before.Parts[p].Active].InstanceID
		a1 := final.Members[final.Parts[p].Active].InstanceID
		if a0 != a1 {
			moved++
			if a1 != "m03" {
				t.Fatalf("partition %d: active moved from %s to %s, not to the new member", p, a0, a1)
			}
		}
	}
	if acts, _ := counts(final); moved != acts[3] {
		t.Fatalf("%d actives moved, the new member has %d", moved, acts[3])
	}
}

func TestBalanceMemberGonePromotesStandby(t *testing.T) {
	w := &world{p: 30, r: 1, warm: 2, members: members(3)}
	before := w.converge(t)
	w.members = []Member{w.members[0], w.members[2]} // m01 is gone
	m := w.step(t)
	for p, pl := range before.Parts {
		was := before.Members[pl.Active].InstanceID
		now := m.Members[m.Parts[p].Active].InstanceID
		if was != "m01" {
			if now != was {
				t.Fatalf("partition %d: active moved from %s to %s though %s stayed", p, was, now, was)
			}
			continue
		}
		stby := before.Members[pl.Standbys[0]].InstanceID
		if now != stby {
			t.Fatalf("partition %d: m01's active went to %s, want its standby %s", p, now, stby)
		}
	}
}

func TestBalancePromotesTheCaughtUpStandby(t *testing.T) {
	w := &world{p: 8, r: 2, warm: 2, members: members(4)}
	before := w.converge(t)
	gone := before.Members[before.Parts[0].Active].InstanceID
	lagging := before.Members[before.Parts[0].Standbys[0]].InstanceID
	fresh := before.Members[before.Parts[0].Standbys[1]].InstanceID
	var stay []Member
	for _, mb := range w.members {
		if mb.InstanceID != gone {
			stay = append(stay, mb)
		}
	}
	w.members = stay
	w.caught = func(id string) []int32 {
		return slices.DeleteFunc(w.holding(id), func(p int32) bool { return p == 0 && id == lagging })
	}
	m := w.step(t)
	if got := m.Members[m.Parts[0].Active].InstanceID; got != fresh {
		t.Fatalf("partition 0: %s promoted, want %s, the standby that reported it caught up (not %s)", got, fresh, lagging)
	}
}

func TestBalanceNewerActiveClaimWins(t *testing.T) {
	in := BalanceInput{Generation: 9, Partitions: 1, Standbys: 1, MaxWarmups: 2, Members: []*MemberMeta{
		{InstanceID: "a", Partitions: 1, LastGeneration: 3, Roles: []PartitionRole{{0, RoleActive}}},
		{InstanceID: "b", Partitions: 1, LastGeneration: 7, Roles: []PartitionRole{{0, RoleActive}}},
	}}
	m := Balance(in)
	if got := m.Members[m.Parts[0].Active].InstanceID; got != "b" {
		t.Fatalf("active %s, want b (its claim is of generation 7, a's of 3)", got)
	}
}

func TestBalanceLeavesOutOtherP(t *testing.T) {
	in := BalanceInput{Generation: 1, Partitions: 4, Standbys: 1, MaxWarmups: 2, Members: []*MemberMeta{
		{InstanceID: "a", Partitions: 4}, {InstanceID: "b", Partitions: 8}, {InstanceID: "c", Partitions: 4},
	}}
	m := Balance(in)
	if _, ok := m.Member("b"); ok || len(m.Members) != 2 {
		t.Fatalf("members %v: b (P=8) should be left out", names(m.Members))
	}
}

func TestBalanceProperties(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	for i := range 200 {
		n := 1 + rng.IntN(10)
		p := []int{1, 2, 3, 16, 64, 256}[rng.IntN(6)]
		r := rng.IntN(4)
		var zones []string
		for z := range rng.IntN(4) {
			zones = append(zones, string(rune('a'+z)))
		}
		w := &world{p: p, r: r, warm: 1 + rng.IntN(3), members: members(n, zones...)}
		name := fmt.Sprintf("case %d: n=%d P=%d R=%d zones=%v warm=%d", i, n, p, r, zones, w.warm)
		t.Run(name, func(t *testing.T) {
			w.converge(t)
			// Churn: members come and go, reports are partial.
			for range 4 {
				all := members(12, zones...)
				rng.Shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })
				w.members = all[:1+rng.IntN(len(all))]
				w.caught = func(id string) []int32 {
					return slices.DeleteFunc(w.holding(id), func(int32) bool { return rng.IntN(4) == 0 })
				}
				w.step(t)
			}
			// Some members drain: once converged they hold nothing (unless
			// all drain).
			w.draining = map[string]bool{}
			for _, mb := range w.members {
				w.draining[mb.InstanceID] = rng.IntN(5) == 0
			}
			drained := w.converge(t)
			if len(w.draining) > 0 && slices.ContainsFunc(w.members, func(mb Member) bool { return !w.draining[mb.InstanceID] }) {
				for _, mb := range w.members {
					if w.draining[mb.InstanceID] && len(drained.Roles(mb.InstanceID)) > 0 {
						t.Fatalf("draining %s still holds %v", mb.InstanceID, drained.Roles(mb.InstanceID))
					}
				}
			}
			w.draining = nil
			final := w.converge(t)
			if len(zones) == 0 {
				checkBalanced(t, final)
			} else {
				acts, _ := counts(final)
				if lo, hi := slices.Min(acts), slices.Max(acts); hi-lo > 1 {
					t.Fatalf("actives per member %v: unbalanced", acts)
				}
			}
			if m := w.step(t); !samePlacement(final, m) {
				acts, reps := counts(final)
				t.Fatalf("a rebalance after convergence moved replicas %v %v %v\n%s\n%s", names(final.Members), acts, reps, dump(final), dump(m))
			}
		})
	}
}

func names(ms []Member) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.InstanceID)
	}
	return out
}

// dump prints a map's placements, one partition a line, for failures.
func dump(m *OwnerMap) string {
	var b strings.Builder
	for p, pl := range m.Parts {
		a := "-"
		if pl.Active >= 0 {
			a = m.Members[pl.Active].InstanceID
		}
		fmt.Fprintf(&b, "p%d: active %s standbys %v warm-ups %v\n", p, a, pl.Standbys, pl.Warmups)
	}
	return b.String()
}

func TestBalanceDrain(t *testing.T) {
	w := &world{p: 12, r: 1, warm: 2, members: members(4)}
	before := w.converge(t)
	had := before.Roles("m01")
	w.draining = map[string]bool{"m01": true}
	m := w.step(t)
	for p, r := range m.Roles("m01") {
		if had[p] == RoleNone || (r == RoleActive && had[p] != RoleActive) {
			t.Fatalf("draining m01 got %s of partition %d, having held %s", r, p, had[p])
		}
	}
	final := w.converge(t)
	if roles := final.Roles("m01"); len(roles) != 0 {
		t.Fatalf("drained m01 still holds %v", roles)
	}
	acts, reps := counts(final)
	for i, mb := range final.Members {
		if mb.InstanceID != "m01" && (acts[i] != 4 || reps[i] != 8) {
			t.Fatalf("after the drain, %s has %d actives and %d replicas, want 4 and 8", mb.InstanceID, acts[i], reps[i])
		}
	}
}
