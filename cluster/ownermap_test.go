package cluster

import (
	"bytes"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func sampleMap(t testing.TB) *OwnerMap {
	t.Helper()
	w := &world{p: 16, r: 1, warm: 2, members: members(3, "a", "b")}
	w.converge(t)
	// A fourth member warming up, so every role is present.
	w.members = members(4, "a", "b")
	w.caught = func(id string) []int32 {
		if id == "m03" {
			return nil
		}
		return w.holding(id)
	}
	return w.step(t)
}

func TestOwnerMapRoundTrip(t *testing.T) {
	m := sampleMap(t)
	if warmups(m) == 0 {
		t.Fatal("sample map has no warm-ups")
	}
	b := m.Encode()
	got, err := DecodeOwnerMap(b)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(m, got, cmpopts.EquateEmpty()); diff != "" {
		t.Fatalf("decode(encode(m)) differs (-want +got):\n%s", diff)
	}
	if !bytes.Equal(got.Encode(), b) {
		t.Fatal("encoding is not canonical: re-encoding the decoded map gives other bytes")
	}
	// P=256, R=1, 10 members: about a kilobyte.
	w := &world{p: 256, r: 1, warm: 2, members: members(10)}
	if n := len(w.step(t).Encode()); n > 1400 {
		t.Fatalf("P=256 R=1 map of 10 members encodes to %d bytes, want about 1 KB", n)
	}
}

func TestOwnerMapRefusesUnknownVersion(t *testing.T) {
	b := sampleMap(t).Encode()
	b[0] = 2
	if _, err := DecodeOwnerMap(b); !errors.Is(err, ErrUnknownVersion) {
		t.Fatalf("version 2: err %v, want ErrUnknownVersion", err)
	}
}

func TestOwnerMapRefusesCorrupt(t *testing.T) {
	good := sampleMap(t).Encode()
	f := func(name string, b []byte) {
		t.Helper()
		if _, err := DecodeOwnerMap(b); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("%s: err %v, want ErrCorrupt", name, err)
		}
	}
	f("empty", nil)
	f("truncated", good[:len(good)-1])
	f("trailing", append(append([]byte(nil), good...), 0))
	// A map whose partition 0 names member 9 of 2.
	bad := &OwnerMap{Generation: 1, Partitions: 1, Members: members(2), Parts: []Placement{{Active: 9}}}
	f("index out of range", bad.Encode())
	bad = &OwnerMap{Generation: 1, Partitions: 1, Members: members(2), Parts: []Placement{{Active: 0, Standbys: []int{0}}}}
	f("member twice in a partition", bad.Encode())
	bad = &OwnerMap{Generation: 1, Partitions: 1, Members: []Member{{InstanceID: "b"}, {InstanceID: "a"}}, Parts: []Placement{{Active: 0}}}
	f("members unsorted", bad.Encode())
}

func TestOwnerMapHelpers(t *testing.T) {
	m := sampleMap(t)
	for p := range m.Parts {
		reps := m.Replicas(int32(p))
		if len(reps) != 2 || reps[0] != m.Members[m.Parts[p].Active] {
			t.Fatalf("partition %d: replicas %v, want the active first and one standby", p, names(reps))
		}
		for _, r := range reps {
			if m.Roles(r.InstanceID)[int32(p)] == RoleWarmup {
				t.Fatalf("partition %d: warm-up %s listed as a replica", p, r.InstanceID)
			}
		}
	}
	roles := m.Roles("m03")
	if len(roles) == 0 {
		t.Fatal("m03 has no roles")
	}
	for p, r := range roles {
		if r != RoleWarmup || !contains(m.Parts[p].Warmups, 3) {
			t.Fatalf("m03 partition %d: role %s, map %+v", p, r, m.Parts[p])
		}
	}
	if len(m.Roles("nobody")) != 0 || m.Replicas(-1) != nil || m.Replicas(16) != nil {
		t.Fatal("helpers answer for a member or partition outside the map")
	}
	var nilMap *OwnerMap
	if nilMap.Replicas(0) != nil || len(nilMap.Roles("m00")) != 0 {
		t.Fatal("a nil map has replicas or roles")
	}
}

func TestMemberMetaRoundTrip(t *testing.T) {
	m := sampleMap(t)
	mm := metaFor(m.Members[1], 16, m, []int32{9, 3, 3, 40, -1, 0}, true)
	if want := []int32{0, 3, 9}; !cmp.Equal(mm.CaughtUp, want) {
		t.Fatalf("caught up %v, want %v (sorted, deduplicated, in range)", mm.CaughtUp, want)
	}
	got, err := DecodeMemberMeta(mm.Encode())
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(mm, got, cmpopts.EquateEmpty()); diff != "" {
		t.Fatalf("decode(encode(meta)) differs (-want +got):\n%s", diff)
	}
	b := mm.Encode()
	b[0] = 9
	if _, err := DecodeMemberMeta(b); !errors.Is(err, ErrUnknownVersion) {
		t.Fatalf("version 9: err %v, want ErrUnknownVersion", err)
	}
	if _, err := DecodeMemberMeta(mm.Encode()[:5]); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("truncated: err %v, want ErrCorrupt", err)
	}
}

func contains(xs []int, x int) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

func TestAdopt(t *testing.T) {
	m := &Membership{cfg: Config{Logger: testLogger()}, self: Member{InstanceID: "m00"}}
	m.mu.changed = make(chan struct{})
	isClosed := func(c <-chan struct{}) bool {
		select {
		case <-c:
			return true
		default:
			return false
		}
	}
	cur, ch := m.Current()
	if cur != nil {
		t.Fatal("a map before the first sync")
	}
	g5 := sampleMap(t)
	g5.Generation = 5
	m.adopt(g5)
	if cur, _ := m.Current(); cur != g5 || !isClosed(ch) {
		t.Fatal("the first map was not adopted and announced")
	}
	_, ch = m.Current()
	again, err := DecodeOwnerMap(g5.Encode())
	if err != nil {
		t.Fatal(err)
	}
	m.adopt(again)
	if isClosed(ch) || m.Stats().Rebalances != 1 {
		t.Fatal("the same map again (a rejoin without rebalance) was announced as a change")
	}
	// A recreated group starts its generations over: its maps still count.
	g1 := &OwnerMap{Generation: 1, Partitions: 16, Members: members(1), Parts: make([]Placement, 16)}
	m.adopt(g1)
	if cur, _ := m.Current(); cur != g1 || !isClosed(ch) || m.Stats().Generation != 1 {
		t.Fatal("a map of a recreated group (generation 1 after 5) was not adopted")
	}
}
