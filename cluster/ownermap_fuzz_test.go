package cluster

import (
	"bytes"
	"testing"
)

// maxFuzzInput caps fuzz inputs: a real map of P=65536 is far larger, but
// the decoder's logic is the same at every size.
const maxFuzzInput = 4 << 10

func FuzzDecodeOwnerMap(f *testing.F) {
	f.Add(sampleMap(f).Encode())
	f.Add((&OwnerMap{Generation: 1, Partitions: 1, Parts: []Placement{{Active: -1}}}).Encode())
	f.Add([]byte{1})
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > maxFuzzInput {
			return
		}
		m, err := DecodeOwnerMap(b)
		if err != nil {
			return
		}
		// Whatever decodes is a valid map and re-encodes to the same bytes.
		if err := m.Validate(); err != nil {
			t.Fatalf("decoded an invalid map: %v", err)
		}
		if !bytes.Equal(m.Encode(), b) {
			t.Fatalf("decoded %x, re-encodes to %x", b, m.Encode())
		}
	})
}

func FuzzDecodeMemberMeta(f *testing.F) {
	m := sampleMap(f)
	f.Add(metaFor(m.Members[0], 16, m, []int32{1, 2, 3}, true).Encode())
	f.Add([]byte{1, 0, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > maxFuzzInput {
			return
		}
		mm, err := DecodeMemberMeta(b)
		if err != nil {
			return
		}
		if !bytes.Equal(mm.Encode(), b) {
			t.Fatalf("decoded %x, re-encodes to %x", b, mm.Encode())
		}
	})
}
