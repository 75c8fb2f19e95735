package serving_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"

	featuredv1 "github.com/featured-dev/featured/api/featured/v1"
	"github.com/featured-dev/featured/offline"
	"github.com/featured-dev/featured/serving"
)

// hostileDefinitions adds a view with ten last_k(1000) features and one with
// 500 counts, the shapes of the lookups that took the server down.
func hostileDefinitions() string {
	var b strings.Builder
	b.WriteString("  - name: recent\n    entity: user\n    source: transactions\n    ttl: 8d\n    features:\n")
	for i := range 10 {
		fmt.Fprintf(&b, "      - {name: last_%d, aggregation: last_k, field: merchant, k: 1000}\n", i)
	}
	b.WriteString("  - name: wide\n    entity: user\n    source: transactions\n    ttl: 8d\n    features:\n")
	for i := range 500 {
		fmt.Fprintf(&b, "      - {name: c%d, aggregation: count}\n", i)
	}
	return strings.Replace(definitions, "feature_services:", b.String()+"feature_services:", 1)
}

func refs(view, prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s:%s%d", view, prefix, i)
	}
	return out
}

func repeat(key any, n int) []any {
	out := make([]any, n)
	for i := range out {
		out[i] = key
	}
	return out
}

// TestHostileLookups sends the lookups of the issue: 1000 repeats of one key
// over ten last_k(1000) features (8.4 GB RSS before), and 1000 entities x
// 500 features. Both are refused by the cell limit before any read, over
// HTTP and gRPC; a lookup within the limit is served.
func TestHostileLookups(t *testing.T) {
	h := newHarness(t, serving.Options{MaxBodyBytes: 1 << 20})
	h.apply(hostileDefinitions())
	h.push("transactions", event{key: "u1", ms: nowMillis - hour, amount: f64(1), merchant: str("m1")})

	st, body := h.post("/v1/features", map[string]any{"features": refs("recent", "last_", 10), "entities": map[string]any{"user_id": repeat("u1", 1000)}})
	wantProblem(t, st, body, http.StatusBadRequest, "entities", "", "1000 rows x 10000 values per row is more than 100000 values")
	if len(body) > 2048 {
		t.Errorf("error body of %d bytes", len(body))
	}
	keys := make([]any, 1000)
	for i := range keys {
		keys[i] = fmt.Sprintf("u%d", i)
	}
	st, body = h.post("/get-online-features", map[string]any{"features": refs("wide", "c", 500), "entities": map[string]any{"user_id": keys}})
	wantProblem(t, st, body, http.StatusBadRequest, "entities", "", "1000 rows x 500 values per row is more than 100000 values")

	_, err := h.serving.GetOnlineFeatures(context.Background(), &featuredv1.GetOnlineFeaturesRequest{
		Kind:     &featuredv1.GetOnlineFeaturesRequest_Features{Features: &featuredv1.FeatureList{Val: refs("recent", "last_", 10)}},
		Entities: map[string]*featuredv1.RepeatedValue{"user_id": protoKeys(repeat("u1", 11)...)},
	})
	wantCode(t, err, codes.InvalidArgument, "--max-cells")

	// Ten rows of one key over the ten last_k features: 100000 values, at
	// the limit, served (each row answered).
	st, body = h.post("/v1/features", map[string]any{"features": refs("recent", "last_", 10), "entities": map[string]any{"user_id": repeat("u1", 10)}})
	if st != http.StatusOK {
		t.Fatalf("at the cell limit: %d %.300s", st, body)
	}
	var resp struct {
		Rows []struct {
			Values [][]string `json:"values"`
		} `json:"rows"`
	}
	if err := json.Unmarshal(body, &resp); err != nil || len(resp.Rows) != 10 || resp.Rows[9].Values[9][0] != "m1" {
		t.Fatalf("at the cell limit: %v %.300s", err, body)
	}
}

func TestResponseBytesLimit(t *testing.T) {
	h := newHarness(t, serving.Options{MaxResponseBytes: 2000})
	seed(h)
	keys := repeat("u1", 40)
	st, body := h.post("/get-online-features", map[string]any{"features": userRefs, "entities": map[string]any{"user_id": keys}})
	wantProblem(t, st, body, http.StatusBadRequest, "", "", "over 2000 bytes (--max-response-bytes)")
	st, body = h.post("/v1/features", map[string]any{"features": userRefs, "entities": map[string]any{"user_id": keys}})
	wantProblem(t, st, body, http.StatusBadRequest, "", "", "--max-response-bytes")
	_, err := h.serving.GetOnlineFeatures(context.Background(), &featuredv1.GetOnlineFeaturesRequest{
		Kind:     &featuredv1.GetOnlineFeaturesRequest_Features{Features: &featuredv1.FeatureList{Val: userRefs}},
		Entities: map[string]*featuredv1.RepeatedValue{"user_id": protoKeys(keys...)},
	})
	wantCode(t, err, codes.InvalidArgument, "--max-response-bytes")
	// A small lookup still fits.
	if st, body := h.post("/v1/features", map[string]any{"features": userRefs, "entities": map[string]any{"user_id": []any{"u1"}}}); st != 200 {
		t.Fatalf("%d %s", st, body)
	}
}

// TestErrorBodiesBounded: a large request with many bad items gets an error
// body of bounded size (it was 5.5 MB for a 3 MB request).
func TestErrorBodiesBounded(t *testing.T) {
	h := newHarness(t, serving.Options{MaxBodyBytes: 4 << 20})
	seed(h)
	feats := make([]string, 1000)
	for i := range feats {
		feats[i] = "user_spend:" + strings.Repeat("x", 2000) + fmt.Sprint(i)
	}
	st, body := h.post("/get-online-features", map[string]any{"features": feats, "entities": map[string]any{"user_id": []any{"u1"}}})
	if st != http.StatusBadRequest || len(body) > 16<<10 {
		t.Fatalf("status %d, error body of %d bytes: %.300s", st, len(body), body)
	}
	if !strings.Contains(string(body), "more problems not listed") {
		t.Errorf("error body does not say problems were left out: %.500s", body)
	}
	huge := `{"features":["user_spend:spend_7d"],"entities":{"user_id":[` + strings.Repeat("9", 3<<20) + `]}}`
	st, body = h.do("POST", "/v1/features", "application/json", []byte(huge))
	if st != http.StatusBadRequest || len(body) > 2048 {
		t.Fatalf("huge number: status %d, error body of %d bytes: %.300s", st, len(body), body)
	}
}

// TestBadKeysRefused: the keyenc rule on the lookup paths; a key that can
// never be stored is a 400 naming the row, not a NOT_FOUND.
func TestBadKeysRefused(t *testing.T) {
	h := newHarness(t, serving.Options{})
	seed(h)
	for _, tc := range []struct{ name, key, reason string }{
		{"empty", "", "empty entity key"},
		{"nul", "a\x00b", "NUL"},
		{"long", strings.Repeat("k", 1025), "1025 bytes, the limit is 1024"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, body := h.post("/v1/features", map[string]any{"features": userRefs[:1], "entities": map[string]any{"user_id": []any{"u1", tc.key}}})
			wantProblem(t, st, body, http.StatusBadRequest, "entities.user_id[1]", "", tc.reason)
			_, err := h.serving.GetOnlineFeatures(context.Background(), &featuredv1.GetOnlineFeaturesRequest{
				Kind:     &featuredv1.GetOnlineFeaturesRequest_Features{Features: &featuredv1.FeatureList{Val: userRefs[:1]}},
				Entities: map[string]*featuredv1.RepeatedValue{"user_id": protoKeys(tc.key)},
			})
			wantCode(t, err, codes.InvalidArgument, tc.reason)
		})
	}
	t.Run("invalid utf-8 over grpc", func(t *testing.T) {
		// gRPC's string fields are checked by protobuf itself: the
		// request does not even decode.
		_, err := h.serving.GetOnlineFeatures(context.Background(), &featuredv1.GetOnlineFeaturesRequest{
			Kind:     &featuredv1.GetOnlineFeaturesRequest_Features{Features: &featuredv1.FeatureList{Val: userRefs[:1]}},
			Entities: map[string]*featuredv1.RepeatedValue{"user_id": protoKeys("\xff")},
		})
		if err == nil {
			t.Fatal("invalid UTF-8 key accepted")
		}
	})
	t.Run("push", func(t *testing.T) {
		st, body := h.post("/v1/push", map[string]any{"source": "transactions", "events": []any{
			map[string]any{"user_id": "", "ts": nowMillis},
			map[string]any{"user_id": strings.Repeat("k", 2000), "ts": nowMillis},
			map[string]any{"user_id": "a\x00", "ts": nowMillis},
		}})
		if st != 200 || strings.Count(string(body), `"code":"bad_key"`) != 3 || len(body) > 1024 {
			t.Fatalf("push of bad keys: %d %s", st, body)
		}
		res, err := h.ingest.Push(context.Background(), &featuredv1.PushRequest{Source: "transactions", Events: []*featuredv1.Event{{
			Fields: map[string]*featuredv1.Value{"user_id": {Kind: &featuredv1.Value_StringVal{StringVal: ""}}, "ts": {Kind: &featuredv1.Value_Int64Val{Int64Val: nowMillis}}},
		}}})
		if err != nil || len(res.GetRejected()) != 1 || res.GetRejected()[0].GetCode() != "bad_key" {
			t.Fatalf("grpc push of an empty key: %v %v", res, err)
		}
	})
}

// TestShedding fills the lookup class and checks that one more lookup is
// refused with 503 + Retry-After over HTTP and RESOURCE_EXHAUSTED over gRPC,
// and served again once a slot is free.
func TestShedding(t *testing.T) {
	h := newHarness(t, serving.Options{MaxLookups: 1, ShedWait: time.Millisecond})
	seed(h)
	release := make(chan struct{})
	entered := make(chan struct{})
	blocker := h.srv.Limit(serving.ClassLookup)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-release
	}))
	bs := httptest.NewServer(blocker)
	defer bs.Close()
	var wg sync.WaitGroup
	wg.Go(func() {
		resp, err := http.Get(bs.URL)
		if err == nil {
			resp.Body.Close()
		}
	})
	<-entered
	if n := h.srv.InFlight(serving.ClassLookup); n != 1 {
		t.Fatalf("in flight %d, want 1", n)
	}
	req := map[string]any{"features": userRefs[:1], "entities": map[string]any{"user_id": []any{"u1"}}}
	b, _ := json.Marshal(req)
	resp, err := http.Post(h.url+"/v1/features", "application/json", strings.NewReader(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") != "1" || !strings.Contains(string(body), "--max-lookups") {
		t.Fatalf("over the limit: %d Retry-After %q %s", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	// Pushes are another class: not refused.
	h.push("transactions", event{key: "u3", ms: nowMillis - hour, amount: f64(1)})

	// gRPC, through the interceptor.
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer(h.srv.GRPCServerOptions()...)
	h.srv.RegisterGRPC(gs)
	wg.Go(func() { _ = gs.Serve(lis) })
	defer gs.Stop()
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := featuredv1.NewServingServiceClient(conn)
	greq := &featuredv1.GetOnlineFeaturesRequest{
		Kind:     &featuredv1.GetOnlineFeaturesRequest_Features{Features: &featuredv1.FeatureList{Val: userRefs[:1]}},
		Entities: map[string]*featuredv1.RepeatedValue{"user_id": protoKeys("u1")},
	}
	_, err = client.GetOnlineFeatures(context.Background(), greq)
	wantCode(t, err, codes.ResourceExhausted, "--max-lookups")

	close(release)
	checkFor(t, func() bool { return h.srv.InFlight(serving.ClassLookup) == 0 })
	if _, err := client.GetOnlineFeatures(context.Background(), greq); err != nil {
		t.Fatalf("after the slot freed: %v", err)
	}
	if st, body := h.post("/v1/features", req); st != 200 {
		t.Fatalf("after the slot freed: %d %s", st, body)
	}
	gs.Stop()
	wg.Wait()
}

// checkFor polls f until it holds, failing after a generous bound.
func checkFor(t *testing.T, f func() bool) {
	t.Helper()
	for i := 0; i < 1000; i++ {
		if f() {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatal("condition never held")
}

// TestSlowBodyCutOff: a client that sends its body a byte at a time, slower
// than the body deadline allows, gets 408 (or its connection cut), not a
// handler waiting forever.
func TestSlowBodyCutOff(t *testing.T) {
	h := newHarness(t, serving.Options{BodyTimeout: 300 * time.Millisecond})
	seed(h)
	conn, err := net.Dial("tcp", strings.TrimPrefix(h.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	body := `{"features":["user_spend:spend_7d"],"entities":{"user_id":["u1"]}}`
	fmt.Fprintf(conn, "POST /v1/features HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", len(body))
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; i < len(body); i++ {
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			if _, err := conn.Write([]byte{body[i]}); err != nil {
				return
			}
		}
	})
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	close(stop)
	wg.Wait()
	if err != nil {
		t.Logf("cut off without an answer: %v", err)
		return
	}
	out, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusRequestTimeout || !strings.Contains(string(out), "--body-timeout") {
		t.Fatalf("slow body: %d %s", resp.StatusCode, out)
	}
}

// TestPlanCacheKeyUnambiguous: a reference containing NUL must not alias a
// cached plan of two references (it was 400 cold, 200 warm).
func TestPlanCacheKeyUnambiguous(t *testing.T) {
	h := newHarness(t, serving.Options{})
	seed(h)
	ents := map[string]any{"user_id": []any{"u1"}}
	if st, body := h.post("/v1/features", map[string]any{"features": userRefs[:2], "entities": ents}); st != 200 {
		t.Fatalf("warm-up: %d %s", st, body)
	}
	st, body := h.post("/v1/features", map[string]any{"features": []string{userRefs[0] + "\x00" + userRefs[1]}, "entities": ents})
	if st != http.StatusBadRequest {
		t.Fatalf("ref with NUL after a warm cache: %d %s", st, body)
	}
}

// TestSlowSpineCutOff: an export spine sent slower than
// --spine-body-timeout allows gets 408 naming the flag (it was a 400:
// the offline handler saw a plain read error), a spine whose length is
// over the limit 413 before it is read, and /v1/status shows the offline
// log's WAL counters.
func TestSlowSpineCutOff(t *testing.T) {
	h := newHarnessLog(t, serving.Options{SpineBodyTimeout: 300 * time.Millisecond}, true)
	seed(h)
	send := func(t *testing.T, head string, body string, every time.Duration) (*http.Response, error) {
		t.Helper()
		conn, err := net.Dial("tcp", strings.TrimPrefix(h.url, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		fmt.Fprint(conn, head)
		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Go(func() {
			for i := 0; i < len(body); i++ {
				select {
				case <-stop:
					return
				case <-time.After(every):
				}
				if _, err := conn.Write([]byte{body[i]}); err != nil {
					return
				}
			}
		})
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		close(stop)
		wg.Wait()
		return resp, err
	}
	body := "user_id,event_timestamp\nu1,1800000000000\nu2,1800000000000\n"
	resp, err := send(t, fmt.Sprintf("POST /v1/export?features=user_spend:spend_7d HTTP/1.1\r\nHost: x\r\nContent-Type: text/csv\r\nContent-Length: %d\r\n\r\n", len(body)), body, 100*time.Millisecond)
	if err != nil {
		t.Fatalf("slow spine: cut off without an answer: %v", err)
	}
	out, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusRequestTimeout || !strings.Contains(string(out), "--spine-body-timeout") {
		t.Fatalf("slow spine: %d %s", resp.StatusCode, out)
	}

	resp, err = send(t, fmt.Sprintf("POST /v1/export?features=user_spend:spend_7d HTTP/1.1\r\nHost: x\r\nContent-Type: text/csv\r\nContent-Length: %d\r\n\r\n", int64(offline.DefaultMaxSpineBytes)+1), "", 0)
	if err != nil {
		t.Fatal(err)
	}
	out, _ = io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(string(out), "spine too large") {
		t.Fatalf("spine over the limit: %d %s", resp.StatusCode, out)
	}

	st, sb := h.do("GET", "/v1/status", "", nil)
	if st != http.StatusOK || !strings.Contains(string(sb), `"offline_log"`) || !strings.Contains(string(sb), `"uncommitted_bytes_dropped"`) {
		t.Fatalf("status: %d %s", st, sb)
	}
}
