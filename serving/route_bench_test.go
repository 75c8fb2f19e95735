package serving_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/featured-dev/featured/serving"
)

// BenchmarkRoute is BenchmarkNativeHandler's 1x50 and 100x50 lookups
// through node 0 of 3 in-process nodes (P=8, every node holding every
// entity, so only the placement differs): "single" without a Placement,
// "local" with one that answers every partition on node 0, "standby" with
// an active and a standby per partition (2/3 of rows local, the way a
// 3-node cluster with one standby reads) and "forwarded" with no partition
// on node 0 (every row forwarded, over loopback gRPC to the two others).
// The peers serve on the same 2 cores, so ns/op is the lookup's whole CPU
// and wait on this machine.
func BenchmarkRoute(b *testing.B) {
	all := make([][]int, routePartitions)
	for p := range all {
		all[p] = []int{0}
	}
	none := make([][]int, routePartitions)
	for p := range none {
		none[p] = []int{1 + p%2, 1 + (p+1)%2}
	}
	for _, tc := range []struct {
		name     string
		replicas [][]int
	}{
		{"single", nil},
		{"local", all},
		{"standby", activeStandby(3, routePartitions)},
		{"forwarded", none},
	} {
		b.Run(tc.name, func(b *testing.B) {
			var addrs []string
			var pls []*staticPlacement
			var front *harness
			for i := range 3 {
				var opts serving.Options
				if tc.replicas != nil {
					pl := &staticPlacement{self: i, replicas: tc.replicas}
					pls = append(pls, pl)
					opts.Placement = pl
				}
				h := newBenchHarnessOpts(b, opts)
				addrs = append(addrs, h.grpcAddr)
				if i == 0 {
					front = h
				}
			}
			for _, pl := range pls {
				pl.setAddrs(addrs)
			}
			handler := front.srv.HTTPHandler()
			for _, sz := range benchSizes[1:] {
				b.Run(sz.name, func(b *testing.B) {
					body := benchBody(b, sz)
					req := httptest.NewRequest("POST", "/v1/features", nil)
					req.Header.Set("Content-Type", "application/json")
					rb := &nopBody{}
					w := &discardWriter{h: http.Header{}}
					b.ReportAllocs()
					b.SetBytes(int64(sz.entities * sz.features))
					for b.Loop() {
						rb.Reset(body)
						req.Body = rb
						req.ContentLength = int64(len(body))
						w.status, w.n = 0, 0
						handler.ServeHTTP(w, req)
						if w.status != http.StatusOK {
							b.Fatalf("status %d", w.status)
						}
					}
					b.ReportMetric(float64(w.n), "resp-bytes")
				})
			}
		})
	}
}
