package serving

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/featured-dev/featured/aggregate"
	featuredv1 "github.com/featured-dev/featured/api/featured/v1"
)

// TestWireResponseMatchesProto: the hand-written wire encoding decodes to
// exactly the message responseToProto builds, for random results of every
// kind and status, string and int64 keys, and any shape.
func TestWireResponseMatchesProto(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	value := func() aggregate.Value {
		switch rng.IntN(6) {
		case 0:
			return aggregate.Value{Kind: aggregate.KindInt64, I: rng.Int64() - 1<<62}
		case 1:
			return aggregate.Value{Kind: aggregate.KindFloat64, F: rng.NormFloat64() * 1e6}
		case 2:
			return aggregate.Value{Kind: aggregate.KindString, S: fmt.Sprintf("m%d", rng.IntN(100))}
		case 3:
			return aggregate.Value{Kind: aggregate.KindBool, I: int64(rng.IntN(2))}
		case 4:
			l := aggregate.Value{Kind: aggregate.KindList, L: []aggregate.Value{}}
			for i := rng.IntN(4); i > 0; i-- {
				l.L = append(l.L, aggregate.Value{Kind: aggregate.KindFloat64, F: float64(rng.IntN(9))})
			}
			return l
		}
		return aggregate.Value{Kind: aggregate.KindFloat64, F: 0}
	}
	var w wireEncoder
	for round := 0; round < 300; round++ {
		n, nf := 1+rng.IntN(12), rng.IntN(8)
		body := `{"entities":{"user_id":[`
		for e := 0; e < n; e++ {
			if e > 0 {
				body += ","
			}
			if round%2 == 0 {
				body += fmt.Sprintf("%d", rng.Int64N(1<<40)-1<<39)
			} else {
				body += fmt.Sprintf("%q", fmt.Sprintf("u%d", rng.IntN(1000)))
			}
		}
		body += `]},"features":["v:f"]}`
		var req lookupRequest
		if err := decodeLookup([]byte(body), &req, 100, 100); err != nil {
			t.Fatalf("decode %s: %v", body, err)
		}
		p := &plan{joinKey: "user_id"}
		for c := 0; c < nf; c++ {
			p.names = append(p.names, fmt.Sprintf("feature_%d", c))
		}
		out := make([]aggregate.Result, n*nf)
		for i := range out {
			switch rng.IntN(5) {
			case 0:
				out[i] = aggregate.Result{Status: aggregate.StatusNotFound}
			case 1:
				out[i] = aggregate.Result{Status: aggregate.StatusNull, EventMillis: rng.Int64N(1 << 42)}
			case 2:
				out[i] = aggregate.Result{Status: aggregate.StatusPresent, Value: value(), EventMillis: -rng.Int64N(1 << 40)}
			default:
				out[i] = aggregate.Result{Status: aggregate.StatusPresent, Value: value(), EventMillis: rng.Int64N(1 << 42)}
			}
		}
		want := responseToProto(p, &req, out)
		got := &featuredv1.GetOnlineFeaturesResponse{}
		wire := w.appendResponse(nil, p, &req, out)
		if err := proto.Unmarshal(wire, got); err != nil {
			t.Fatalf("round %d: unmarshal: %v", round, err)
		}
		if !proto.Equal(got, want) {
			t.Fatalf("round %d: wire encoding differs:\ngot  %v\nwant %v", round, got, want)
		}
		if std, _ := proto.Marshal(want); len(std) != len(wire) {
			t.Fatalf("round %d: %d bytes, proto.Marshal gives %d", round, len(wire), len(std))
		}
	}
}
