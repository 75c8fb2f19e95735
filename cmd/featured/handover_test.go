package main

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/featured-dev/featured/backup"
)

// TestClusterHandover: two nodes checkpoint their active partitions to
// the object store (the test's SeaweedFS, or a directory outside CI when
// there is none); a third node, started on an empty data dir after more
// events, restores every partition it is given from those checkpoints
// rather than replaying the topic, and once caught up answers what the
// reference says: nothing lost, nothing applied twice.
func TestClusterHandover(t *testing.T) {
	const users, events = 40, 20
	r := newClusterRig(t, users, events)
	dest := s3Dest(t, "featured-test")
	if dest == "" {
		dest = filepath.Join(t.TempDir(), "checkpoints")
	}
	// --probing-interval: node-b, joining node-a's group, is given every
	// partition as a standby, and a standby catching up asks for no
	// rebalance (only a warm-up does); the probe is what moves actives to
	// it here.
	r.nodeArgs = []string{"--checkpoint-dest", dest, "--checkpoint-interval", "1s", "--checkpoint-keep", "2", "--probing-interval", "2s"}
	r.produce(0, 10, 0)
	two := []string{"node-a", "node-b"}
	for _, name := range two {
		r.startNode(name)
	}
	r.waitFor("2 nodes settle", 90*time.Second, func() (bool, string) { return r.settled(two...) })
	r.waitFor("2 nodes equal the reference", 30*time.Second, r.equalEverywhere)
	// Every partition has a checkpoint holding the first rounds.
	ctx := context.Background()
	r.waitFor("a checkpoint of every partition", 60*time.Second, func() (bool, string) {
		for p := range clusterP {
			d, err := backup.OpenPartition(ctx, dest, p)
			if err != nil {
				return false, err.Error()
			}
			ms, err := d.List(ctx)
			d.Close()
			if err != nil {
				return false, err.Error()
			}
			if len(ms) == 0 || ms[len(ms)-1].Store == nil || len(ms[len(ms)-1].Store.Partitions) != 1 {
				return false, fmt.Sprintf("partition %d: %d checkpoints", p, len(ms))
			}
		}
		return true, ""
	})
	r.waitFor("both nodes checkpoint their actives", 30*time.Second, func() (bool, string) {
		for _, n := range two {
			st, err := r.nodes[n].status(t)
			if err != nil {
				return false, err.Error()
			}
			if h := st.Handover; h == nil || h.Checkpoints == 0 || h.CheckpointErrors != 0 {
				return false, fmt.Sprintf("%s: handover status %+v, want checkpoints and no errors", n, h)
			}
		}
		return true, ""
	})
	// More events after the checkpoints: the new node restores, then
	// replays only these.
	r.produce(10, events, 0)
	three := []string{"node-a", "node-b", "node-c"}
	r.startNode("node-c")
	r.waitFor("3 nodes settle", 90*time.Second, func() (bool, string) { return r.settled(three...) })
	r.waitFor("3 nodes equal the reference", 30*time.Second, r.equalEverywhere)
	st, err := r.nodes["node-c"].status(t)
	if err != nil {
		t.Fatal(err)
	}
	held := 0
	for _, p := range st.Partitions {
		if p.Role != "none" {
			held++
		}
	}
	h := st.Handover
	if h == nil || held == 0 || h.Restores < uint64(held) || h.Replays != 0 || h.RestoreErrors != 0 || h.RestoreBytes == 0 {
		t.Fatalf("node-c holds %d partitions; handover status %+v, want every one restored, none replayed\n%s", held, h, r.nodes["node-c"].s.logs)
	}
	samples := scrape(t, r.nodes["node-c"].s.url)
	if v, _ := family(samples, "featured_cluster_restores_total", `result="restored"`); v != float64(h.Restores) {
		t.Errorf("featured_cluster_restores_total{result=restored} is %v, status says %d", v, h.Restores)
	}
	if v, _ := family(samples, "featured_cluster_restore_bytes_total"); v < 1 {
		t.Errorf("featured_cluster_restore_bytes_total is %v", v)
	}
	if v, _ := family(scrape(t, r.nodes["node-a"].s.url), "featured_cluster_checkpoints_total", `result="ok"`); v < 1 {
		t.Errorf("node-a: featured_cluster_checkpoints_total{result=ok} is %v", v)
	}
	t.Logf("node-c restored %d partitions (%d bytes) in %.2fs", h.Restores, h.RestoreBytes, h.RestoreSeconds)
}
