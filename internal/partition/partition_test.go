package partition

import "testing"

// The vectors of Kafka's own UtilsTest.testMurmur2: the Java client's
// partitioner is what producers outside featured use, so ours must agree.
func TestMurmur2MatchesJava(t *testing.T) {
	cases := []struct {
		key  string
		want int32
	}{
		{"21", -973932308},
		{"foobar", -790332482},
		{"a-little-bit-long-string", -985981536},
		{"a-little-bit-longer-string", -1486304829},
		{"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971},
		{"abc", 479470107},
	}
	for _, c := range cases {
		if got := Murmur2([]byte(c.key)); got != c.want {
			t.Errorf("Murmur2(%q) = %d, want %d", c.key, got, c.want)
		}
	}
}

func TestOfInRange(t *testing.T) {
	for _, n := range []int{1, 3, 16, 256} {
		for i := 0; i < 1000; i++ {
			key := []byte{byte(i), byte(i >> 8), 'k'}
			if p := Of(key, n); p < 0 || p >= n {
				t.Fatalf("Of(%v, %d) = %d, out of range", key, n, p)
			}
		}
	}
}

func TestAppendInt64(t *testing.T) {
	if got := string(AppendInt64(nil, -1001, Decimal)); got != "-1001" {
		t.Errorf("Decimal: %q", got)
	}
	if got := AppendInt64(nil, 258, Int64BE); string(got) != "\x00\x00\x00\x00\x00\x00\x01\x02" {
		t.Errorf("Int64BE: %v", got)
	}
	if got := string(AppendString([]byte("a"), "bc")); got != "abc" {
		t.Errorf("AppendString: %q", got)
	}
}
