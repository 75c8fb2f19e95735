package serving

import (
	"testing"

	"google.golang.org/grpc/encoding"
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
