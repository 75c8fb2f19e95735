package codec

import (
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/klauspost/compress/s2"
)

// fastSnappy is arrow-go's Snappy codec with its encoder swapped for
// s2.EncodeSnappy. arrow-go encodes with s2.EncodeSnappyBetter, which
// spends about a quarter more CPU to make pages a few percent smaller; the
// offline log and exports write mostly distinct numbers, where the extra
// effort buys little. The output is standard Snappy (any reader decodes
// it), and decoding is unchanged.
type fastSnappy struct{ compress.Codec }

func (fastSnappy) Encode(dst, src []byte) []byte { return s2.EncodeSnappy(dst, src) }

func (fastSnappy) EncodeLevel(dst, src []byte, _ int) []byte { return s2.EncodeSnappy(dst, src) }

func init() {
	base, err := compress.GetCodec(compress.Codecs.Snappy)
	if err != nil {
		panic(err)
	}
	compress.RegisterCodec(compress.Codecs.Snappy, fastSnappy{base})
}
