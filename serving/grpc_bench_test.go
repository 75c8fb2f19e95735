package serving

import (
	"testing"

	"google.golang.org/grpc/encoding"
	"google.golang.org/protobuf/types/known/timestamppb"

	featuredv1 "github.com/featured-dev/featured/api/featured/v1"
)

// BenchmarkGRPCEncode is the server's share of a gRPC lookup's response:
// building the message and marshalling it with the registered codec.
func BenchmarkGRPCEncode(b *testing.B) {
	c := encoding.GetCodecV2("proto")
	for _, sz := range codecSizes {
		p, req, out := codecFixture(sz)
		b.Run(sz.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				resp, _ := newResponse(p, req, out)
				bs, err := c.Marshal(resp)
				if err != nil {
					b.Fatal(err)
				}
				bs.Free()
			}
		})
	}
}

// BenchmarkGRPCMarshal is the codec's share of BenchmarkGRPCEncode: one
// message, built once, marshalled again and again.
func BenchmarkGRPCMarshal(b *testing.B) {
	c := encoding.GetCodecV2("proto")
	for _, sz := range codecSizes {
		p, req, out := codecFixture(sz)
		resp, _ := newResponse(p, req, out)
		b.Run(sz.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				bs, err := c.Marshal(resp)
				if err != nil {
					b.Fatal(err)
				}
				bs.Free()
			}
		})
	}
}

var sinkVectors []featuredv1.FeatureVector

// BenchmarkGRPCAllocFloor allocates the arrays newResponse allocates for
// BenchmarkGRPCEncode's lookups (every value present, int64, 8 distinct
// times) and fills nothing: the floor under any build of a real message of
// this layout, and what keeps BenchmarkGRPCEncode above the wire-bytes
// encoder that came before it (docs/benchmarks.md, issue 10.4).
func BenchmarkGRPCAllocFloor(b *testing.B) {
	for _, sz := range codecSizes {
		n, nf := sz.entities, sz.features
		cells := n * (nf + 1)
		b.Run(sz.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				head := &struct {
					resp  featuredv1.GetOnlineFeaturesResponse
					md    featuredv1.GetOnlineFeaturesResponseMetadata
					names featuredv1.FeatureList
				}{}
				head.names.Val = make([]string, nf+1)
				head.resp.Results = make([]*featuredv1.FeatureVector, nf+1)
				_ = make([]featuredv1.FieldStatus, cells)
				_ = make([]*timestamppb.Timestamp, cells)
				_ = make([]timestamppb.Timestamp, min(cells, 16))
				sinkVectors = make([]featuredv1.FeatureVector, nf+1)
				_ = make([]featuredv1.Value, cells+1)
				_ = make([]*featuredv1.Value, cells)
				_ = make([]featuredv1.Value_Int64Val, cells)
			}
		})
	}
}
