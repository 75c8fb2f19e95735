package cluster_test

import (
	"fmt"

	"github.com/featured-dev/featured/cluster"
)

// A new cluster of three members in two zones: nothing is caught up
// anywhere, so every replica goes straight to its target.
func ExampleBalance() {
	in := cluster.BalanceInput{Generation: 1, Partitions: 6, Standbys: 1, MaxWarmups: 2}
	for i, zone := range []string{"a", "b", "a"} {
		in.Members = append(in.Members, &cluster.MemberMeta{
			InstanceID: fmt.Sprintf("featured-%d", i),
			Advertise:  fmt.Sprintf("featured-%d.featured:9090", i),
			Zone:       zone,
			Partitions: 6,
		})
	}
	m := cluster.Balance(in)
	for p := range int32(m.Partitions) {
		fmt.Print(p, ":")
		for _, r := range m.Replicas(p) {
			fmt.Print(" ", r.InstanceID, "(", r.Zone, ")")
		}
		fmt.Println()
	}
	fmt.Println(m.Roles("featured-1"))
	// Output:
	// 0: featured-0(a) featured-1(b)
	// 1: featured-1(b) featured-0(a)
	// 2: featured-2(a) featured-1(b)
	// 3: featured-0(a) featured-1(b)
	// 4: featured-1(b) featured-2(a)
	// 5: featured-2(a) featured-1(b)
	// map[0:standby 1:active 2:standby 3:standby 4:active 5:standby]
}
