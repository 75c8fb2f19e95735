package serving

import (
	"bytes"
	"encoding/json"
	"flag"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/featured-dev/featured/aggregate"
)

var rewrite = flag.Bool("rewrite", false, "rewrite golden files in testdata/")

func TestAppendFloat(t *testing.T) {
	f := func(in float64, want string) {
		t.Helper()
		if got := string(appendFloat(nil, in)); got != want {
			t.Errorf("appendFloat(%v) = %s, want %s", in, got, want)
		}
	}
	f(0, "0.0")
	f(math.Copysign(0, -1), "-0.0")
	f(1, "1.0")
	f(-3, "-3.0")
	f(12.5, "12.5")
	f(0.1, "0.1")
	x, y := 0.1, 0.2
	f(x+y, "0.30000000000000004")
	f(123456789, "123456789.0")
	f(1e20, "100000000000000000000.0")
	f(1e21, "1e+21")
	f(1e-6, "0.000001")
	f(1e-7, "1e-7")
	f(-2.5e-9, "-2.5e-9")
	f(math.MaxFloat64, "1.7976931348623157e+308")
	f(5e-324, "5e-324")
	f(math.NaN(), "null")
	f(math.Inf(1), "null")
}

func TestAppendFloatRoundTrips(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 100000; i++ {
		x := math.Float64frombits(r.Uint64())
		if math.IsNaN(x) || math.IsInf(x, 0) {
			continue
		}
		s := appendFloat(nil, x)
		var back float64
		if err := json.Unmarshal(s, &back); err != nil || back != x {
			t.Fatalf("appendFloat(%v) = %s reads back as %v (%v)", x, s, back, err)
		}
		if strconv.FormatFloat(x, 'g', -1, 64) != strconv.FormatFloat(back, 'g', -1, 64) {
			t.Fatalf("appendFloat(%v) = %s is not the shortest round trip", x, s)
		}
	}
}

func TestAppendString(t *testing.T) {
	f := func(in, want string) {
		t.Helper()
		got := appendString(nil, in)
		if string(got) != want {
			t.Errorf("appendString(%q) = %s, want %s", in, got, want)
		}
		if !json.Valid(got) {
			t.Errorf("appendString(%q) = %s is not valid JSON", in, got)
		}
	}
	f("", `""`)
	f("plain", `"plain"`)
	f(`a"b\c`, `"a\"b\\c"`)
	f("tab\there\nnl\rcr", `"tab\there\nnl\rcr"`)
	f("\x00\x1f", `"\u0000\u001f"`)
	f("café 😀 <&>", `"café 😀 <&>"`)
	f("bad\xffutf8", `"bad\ufffdutf8"`)
	f("\xe2\x82", `"\ufffd\ufffd"`)

	// Any valid string reads back as itself.
	r := rand.New(rand.NewPCG(3, 4))
	for i := 0; i < 10000; i++ {
		runes := make([]rune, r.IntN(12))
		for j := range runes {
			switch r.IntN(3) {
			case 0:
				runes[j] = rune(r.IntN(0x80))
			case 1:
				runes[j] = rune(r.IntN(0xd800))
			default:
				runes[j] = rune(0xe000 + r.IntN(0x10ffff-0xe000))
			}
		}
		s := string(runes)
		var back string
		if err := json.Unmarshal(appendString(nil, s), &back); err != nil || back != s {
			t.Fatalf("appendString(%q) reads back as %q (%v)", s, back, err)
		}
	}
}

func TestAppendTimestamp(t *testing.T) {
	f := func(ms int64, want string) {
		t.Helper()
		if got := string(appendTimestamp(nil, ms)); got != want {
			t.Errorf("appendTimestamp(%d) = %s, want %s", ms, got, want)
		}
	}
	f(0, `"1970-01-01T00:00:00Z"`)
	f(1, `"1970-01-01T00:00:00.001Z"`)
	f(-1, `"1969-12-31T23:59:59.999Z"`)
	f(1795514400000, `"2026-11-24T10:00:00Z"`)
	f(1795514400120, `"2026-11-24T10:00:00.120Z"`)
	f(951782400000, `"2000-02-29T00:00:00Z"`)
	f(253402300799999, `"9999-12-31T23:59:59.999Z"`)

	r := rand.New(rand.NewPCG(5, 6))
	for i := 0; i < 100000; i++ {
		ms := r.Int64N(253402300800000+62135596800000) - 62135596800000 // years 0001..9999
		want := `"` + time.UnixMilli(ms).UTC().Format("2006-01-02T15:04:05.000Z") + `"`
		if ms%1000 == 0 {
			want = `"` + time.UnixMilli(ms).UTC().Format("2006-01-02T15:04:05Z") + `"`
		}
		if got := string(appendTimestamp(nil, ms)); got != want {
			t.Fatalf("appendTimestamp(%d) = %s, want %s", ms, got, want)
		}
	}
}

func TestAppendValue(t *testing.T) {
	f := func(v aggregate.Value, want string) {
		t.Helper()
		if got := string(appendValue(nil, &v)); got != want {
			t.Errorf("appendValue(%+v) = %s, want %s", v, got, want)
		}
	}
	f(aggregate.Value{}, "null")
	f(aggregate.Value{Kind: aggregate.KindInt64, I: -42}, "-42")
	f(aggregate.Value{Kind: aggregate.KindFloat64, F: 2}, "2.0")
	f(aggregate.Value{Kind: aggregate.KindString, S: "x"}, `"x"`)
	f(aggregate.Value{Kind: aggregate.KindBool, I: 1}, "true")
	f(aggregate.Value{Kind: aggregate.KindBool}, "false")
	f(aggregate.Value{Kind: aggregate.KindList, L: []aggregate.Value{
		{Kind: aggregate.KindString, S: "m2"}, {Kind: aggregate.KindString, S: "m1"}}}, `["m2","m1"]`)
	f(aggregate.Value{Kind: aggregate.KindList}, `[]`)
}

// goldenPlan is a plan over user_spend's features, built by hand (no
// registry) for the encoder tests.
func goldenPlan(names ...string) *plan {
	p := &plan{joinKey: "user_id", entityName: "user", entityKind: aggregate.KindString, names: names}
	p.feastHeader = appendFeastHeader(nil, p)
	p.nativeHeader = appendNativeHeader(nil, p)
	return p
}

func goldenRequest(t *testing.T, keys ...string) *lookupRequest {
	t.Helper()
	body := `{"features":[],"entities":{"user_id":[`
	for i, k := range keys {
		if i > 0 {
			body += ","
		}
		body += k
	}
	body += `]}}`
	var req lookupRequest
	if err := decodeLookup([]byte(body), &req, 0, 0); err != nil {
		t.Fatal(err)
	}
	return &req
}

// goldenResults is one row per entity: u1 has state, u2 has state but empty
// windows, u3 has none.
func goldenResults() []aggregate.Result {
	at := int64(1795514400000) // 2026-11-24T10:00:00Z
	return []aggregate.Result{
		// u1
		{Value: aggregate.Value{Kind: aggregate.KindFloat64, F: 12.5}, Status: aggregate.StatusPresent, EventMillis: at - 60_000},
		{Value: aggregate.Value{Kind: aggregate.KindInt64, I: 3}, Status: aggregate.StatusPresent, EventMillis: at - 1},
		{Value: aggregate.Value{Kind: aggregate.KindString, S: "m\"1"}, Status: aggregate.StatusPresent, EventMillis: at - 60_000},
		{Value: aggregate.Value{Kind: aggregate.KindList, L: []aggregate.Value{{Kind: aggregate.KindString, S: "b"}, {Kind: aggregate.KindString, S: "a"}}},
			Status: aggregate.StatusPresent, EventMillis: at - 60_000},
		// u2
		{Value: aggregate.Value{Kind: aggregate.KindFloat64, F: math.Inf(1)}, Status: aggregate.StatusPresent, EventMillis: at - 3_600_000},
		{Value: aggregate.Value{Kind: aggregate.KindInt64, I: 0}, Status: aggregate.StatusPresent, EventMillis: at - 3_600_000},
		{Status: aggregate.StatusNull, EventMillis: at - 3_600_000},
		{Value: aggregate.Value{Kind: aggregate.KindList}, Status: aggregate.StatusPresent, EventMillis: at - 3_600_000},
		// u3
		{Status: aggregate.StatusNotFound},
		{Status: aggregate.StatusNotFound},
		{Status: aggregate.StatusNotFound},
		{Status: aggregate.StatusNotFound},
	}
}

func checkGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	if !json.Valid(got) {
		t.Fatalf("%s: not valid JSON:\n%s", name, got)
	}
	var pretty bytes.Buffer
	if err := json.Indent(&pretty, got, "", "  "); err != nil {
		t.Fatal(err)
	}
	pretty.WriteByte('\n')
	path := filepath.Join("testdata", name)
	if *rewrite {
		if err := os.WriteFile(path, pretty.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -rewrite to create it)", err)
	}
	if !bytes.Equal(pretty.Bytes(), want) {
		t.Errorf("%s differs from the golden file (run with -rewrite and review the diff):\n got:\n%s\nwant:\n%s", name, pretty.Bytes(), want)
	}
}

// TestFeastResponseGolden pins the Feast response byte for byte: field order
// (metadata.feature_names, then results of values, statuses,
// event_timestamps), the join key column first with PRESENT and the epoch,
// null values for NULL_VALUE / NOT_FOUND / INVALID, RFC 3339 UTC timestamps.
func TestFeastResponseGolden(t *testing.T) {
	p := goldenPlan("spend_7d", "txn_count_1h", "last_merchant", "last_3_merchants")
	req := goldenRequest(t, `"u1"`, `"u2"`, `"u3"`)
	got := appendFeastResponse(nil, p, req, goldenResults())
	checkGolden(t, "feast_response.golden.json", got)

	// The compact bytes themselves start as Feast's do.
	const prefix = `{"metadata":{"feature_names":["user_id","spend_7d","txn_count_1h","last_merchant","last_3_merchants"]},"results":[{"values":["u1","u2","u3"],"statuses":["PRESENT","PRESENT","PRESENT"],"event_timestamps":["1970-01-01T00:00:00Z","1970-01-01T00:00:00Z","1970-01-01T00:00:00Z"]},{"values":[12.5,null,null],"statuses":["PRESENT","INVALID","NOT_FOUND"],"event_timestamps":["2026-11-24T09:59:00Z","2026-11-24T09:00:00Z","1970-01-01T00:00:00Z"]}`
	if !bytes.HasPrefix(got, []byte(prefix)) {
		t.Errorf("compact Feast response:\n got %s\nwant prefix %s", got, prefix)
	}
}

func TestNativeResponseGolden(t *testing.T) {
	p := goldenPlan("spend_7d", "txn_count_1h", "last_merchant", "last_3_merchants")
	req := goldenRequest(t, `"u1"`, `"u2"`, `"u3"`)
	got := appendNativeResponse(nil, p, req, goldenResults(), 1795514400000)
	checkGolden(t, "native_response.golden.json", got)
}

func TestFeastResponseIntKeys(t *testing.T) {
	p := goldenPlan("f")
	p.joinKey = "entity"
	p.feastHeader = appendFeastHeader(nil, p)
	req := goldenRequest(t, "7", "-1")
	out := []aggregate.Result{{Status: aggregate.StatusNotFound}, {Status: aggregate.StatusNotFound}}
	got := string(appendFeastResponse(nil, p, req, out))
	want := `{"metadata":{"feature_names":["entity","f"]},"results":[{"values":[7,-1],"statuses":["PRESENT","PRESENT"],"event_timestamps":["1970-01-01T00:00:00Z","1970-01-01T00:00:00Z"]},{"values":[null,null],"statuses":["NOT_FOUND","NOT_FOUND"],"event_timestamps":["1970-01-01T00:00:00Z","1970-01-01T00:00:00Z"]}]}`
	if got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}

func TestEncodeAllocs(t *testing.T) {
	p := goldenPlan("spend_7d", "txn_count_1h", "last_merchant", "last_3_merchants")
	req := goldenRequest(t, `"u1"`, `"u2"`, `"u3"`)
	out := goldenResults()
	buf := appendFeastResponse(nil, p, req, out)
	allocs := testing.AllocsPerRun(100, func() {
		buf = appendFeastResponse(buf[:0], p, req, out)
		buf = appendNativeResponse(buf[:0], p, req, out, 1)
	})
	if allocs != 0 {
		t.Errorf("encoding into a warm buffer allocates %.1f times, want 0", allocs)
	}
}

func TestTimestampCache(t *testing.T) {
	// One cache over a sequence that crosses days back and forth must format
	// every timestamp as a fresh one does.
	var c tsCache
	r := rand.New(rand.NewPCG(7, 8))
	ms := int64(1795514400000)
	for i := 0; i < 100000; i++ {
		switch r.IntN(4) {
		case 0:
			ms += r.Int64N(3 * 86400000)
		case 1:
			ms -= r.Int64N(3 * 86400000)
		default:
			ms += r.Int64N(2000) - 1000
		}
		if got, want := string(c.append(nil, ms)), string(appendTimestamp(nil, ms)); got != want {
			t.Fatalf("cached timestamp of %d = %s, want %s", ms, got, want)
		}
	}
}
