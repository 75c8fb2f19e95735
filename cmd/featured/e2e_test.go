package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/featured-dev/featured/aggregate"
	"github.com/featured-dev/featured/aggregate/aggregatetest"
	"github.com/featured-dev/featured/internal/testdefs"
	"github.com/featured-dev/featured/registry"
)

// The end-to-end tests run the real binary as a child process, on loopback
// ports, against a data dir in t.TempDir().

var binary struct {
	once sync.Once
	path string
	err  error
}

func featuredBinary(t *testing.T) string {
	t.Helper()
	binary.once.Do(func() {
		dir, err := os.MkdirTemp("", "featured-bin-")
		if err != nil {
			binary.err = err
			return
		}
		binary.path = filepath.Join(dir, "featured")
		args := []string{"build", "-o", binary.path}
		if raceEnabled {
			args = append(args, "-race")
		}
		out, err := exec.Command("go", append(args, ".")...).CombinedOutput()
		if err != nil {
			binary.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binary.err != nil {
		t.Fatal(binary.err)
	}
	return binary.path
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// server is one run of `featured serve` in a child process.
type server struct {
	cmd     *exec.Cmd
	url     string
	grpc    string
	logs    *syncBuffer
	done    chan struct{}
	exitErr error
}

// syncBuffer collects a child's output; tests read it while the child
// still writes (waiting for a log line, failure messages).
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func startServer(t *testing.T, dataDir string, extra ...string) *server {
	t.Helper()
	return startServerAt(t, dataDir, freePort(t), freePort(t), extra...)
}

// startServerAt is startServer on given addresses (a node restarted where
// its peers know it).
func startServerAt(t *testing.T, dataDir, httpAddr, grpcAddr string, extra ...string) *server {
	t.Helper()
	args := append([]string{"serve", "--data-dir", dataDir, "--http-addr", httpAddr, "--grpc-addr", grpcAddr, "--partitions", "2"}, extra...)
	cmd := exec.Command(featuredBinary(t), args...)
	s := &server{cmd: cmd, url: "http://" + httpAddr, grpc: grpcAddr, logs: &syncBuffer{}, done: make(chan struct{})}
	cmd.Stdout = s.logs
	cmd.Stderr = s.logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { s.exitErr = cmd.Wait(); close(s.done) }()
	t.Cleanup(func() { s.kill() })
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(s.url + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return s
			}
		}
		select {
		case <-s.done:
			t.Fatalf("featured exited during startup: %v\n%s", s.exitErr, s.logs)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("featured not ready after 60s:\n%s", s.logs)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// kill is kill -9: no flush, no shutdown.
func (s *server) kill() {
	select {
	case <-s.done:
		return
	default:
	}
	s.cmd.Process.Signal(syscall.SIGKILL)
	<-s.done
}

// stop is a graceful SIGTERM shutdown; it fails the test if the server
// does not exit cleanly.
func (s *server) stop(t *testing.T) {
	t.Helper()
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(60 * time.Second):
		t.Fatalf("featured did not stop within 60s of SIGTERM:\n%s", s.logs)
	}
	if s.exitErr != nil {
		t.Fatalf("featured exited with %v after SIGTERM:\n%s", s.exitErr, s.logs)
	}
}

// cli runs a client command in-process against s.
func (s *server) cli(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	err := run(context.Background(), append(args, "--server", s.url), &out, &errb)
	return out.String(), err
}

func (s *server) post(t *testing.T, path string, body any) (int, []byte) {
	t.Helper()
	b, _ := json.Marshal(body)
	resp, err := http.Post(s.url+path, "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	buf.ReadFrom(resp.Body)
	return resp.StatusCode, buf.Bytes()
}

type nativeResponse struct {
	Features []string `json:"features"`
	ReadAtMs int64    `json:"read_at_ms"`
	Rows     []struct {
		Key      json.RawMessage   `json:"key"`
		Values   []json.RawMessage `json:"values"`
		Statuses []string          `json:"statuses"`
		EventMs  []int64           `json:"event_ms"`
	} `json:"rows"`
}

// lookup reads every feature of view for users over the native API.
func (s *server) lookup(t *testing.T, refs []string, users []string) nativeResponse {
	t.Helper()
	code, body := s.post(t, "/v1/features", map[string]any{"features": refs, "entities": map[string]any{"user_id": users}})
	if code != 200 {
		t.Fatalf("lookup: %d %s", code, body)
	}
	var r nativeResponse
	if err := json.Unmarshal(body, &r); err != nil {
		t.Fatalf("lookup answer %s: %v", body, err)
	}
	return r
}

// resultOf turns a JSON answer back into an aggregate.Result of the kind
// the spec produces, for comparison with the reference.
func resultOf(t *testing.T, kind aggregate.Kind, elem aggregate.Kind, raw json.RawMessage, status string, eventMs int64) aggregate.Result {
	t.Helper()
	r := aggregate.Result{EventMillis: eventMs}
	switch status {
	case "PRESENT":
		r.Status = aggregate.StatusPresent
	case "NULL_VALUE":
		r.Status = aggregate.StatusNull
	case "NOT_FOUND":
		r.Status = aggregate.StatusNotFound
	default:
		t.Fatalf("status %q", status)
	}
	if string(raw) == "null" {
		return r
	}
	r.Value = jsonToValue(t, kind, elem, raw)
	return r
}

func jsonToValue(t *testing.T, kind, elem aggregate.Kind, raw json.RawMessage) aggregate.Value {
	t.Helper()
	switch kind {
	case aggregate.KindInt64:
		i, err := strconv.ParseInt(string(raw), 10, 64)
		if err != nil {
			t.Fatalf("int %s: %v", raw, err)
		}
		return aggregate.Value{Kind: kind, I: i}
	case aggregate.KindFloat64:
		f, err := strconv.ParseFloat(string(raw), 64)
		if err != nil || math.IsInf(f, 0) {
			t.Fatalf("float %s: %v", raw, err)
		}
		return aggregate.Value{Kind: kind, F: f}
	case aggregate.KindString:
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			t.Fatal(err)
		}
		return aggregate.Value{Kind: kind, S: s}
	case aggregate.KindBool:
		var b bool
		if err := json.Unmarshal(raw, &b); err != nil {
			t.Fatal(err)
		}
		v := aggregate.Value{Kind: kind}
		if b {
			v.I = 1
		}
		return v
	case aggregate.KindList:
		var items []json.RawMessage
		if err := json.Unmarshal(raw, &items); err != nil {
			t.Fatal(err)
		}
		v := aggregate.Value{Kind: kind, L: []aggregate.Value{}}
		for _, it := range items {
			v.L = append(v.L, jsonToValue(t, elem, aggregate.KindNull, it))
		}
		return v
	}
	t.Fatalf("kind %v", kind)
	return aggregate.Value{}
}

// checkAgainstReference looks up every feature of the view for every user
// and compares with the brute-force reference at the server's read time.
func (s *server) checkAgainstReference(t *testing.T, view *registry.View, streams map[string][]aggregatetest.Event) {
	t.Helper()
	var refs []string
	for _, f := range view.Features {
		refs = append(refs, fmt.Sprintf("%s@v%d:%s", view.Name, view.Version, f.Name))
	}
	var users []string
	for u := range streams {
		users = append(users, u)
	}
	r := s.lookup(t, refs, users)
	specs := view.Layout.Specs()
	mismatches := 0
	for i, row := range r.Rows {
		events := streams[users[i]]
		for f, spec := range specs {
			kind := spec.Op.ResultKind(spec.FieldKind)
			got := resultOf(t, kind, spec.FieldKind, row.Values[f], row.Statuses[f], row.EventMs[f])
			want := aggregatetest.Reference(specs, view.Layout.TTLMillis(), events, f, r.ReadAtMs)
			if !aggregatetest.Equal(got, want, 1e-9) {
				mismatches++
				if mismatches <= 10 {
					t.Errorf("%s %s: got %+v, want %+v", users[i], refs[f], got, want)
				}
			}
		}
	}
	if mismatches > 0 {
		t.Fatalf("%d mismatches", mismatches)
	}
}

// readDefs parses a definitions file into a registry in a scratch dir, to
// get the compiled views the server will have.
func compiledView(t *testing.T, defs, view string) *registry.View {
	t.Helper()
	reg, err := registry.Open(filepath.Join(t.TempDir(), "registry.json"))
	if err != nil {
		t.Fatal(err)
	}
	d, err := registry.ParseYAML([]byte(defs))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Apply(d); err != nil {
		t.Fatal(err)
	}
	v, err := reg.Snapshot().View(view, 0)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func defsWith(kind, topic string) string {
	return testdefs.Doc([]string{testdefs.Source("tx", kind, topic)}, []string{testdefs.View("spend", "tx", "2d")})
}

// fieldNames is the source's field order (sorted by name).
var fieldNames = testdefs.FieldNames

func streamsFor(n int, seed uint64, events int, now time.Time) map[string][]aggregatetest.Event {
	out := map[string][]aggregatetest.Event{}
	for i := 0; i < n; i++ {
		out[fmt.Sprintf("user-%03d", i)] = aggregatetest.Stream(seed+uint64(i), aggregatetest.StreamOptions{
			Events:        events,
			Fields:        []aggregate.Kind{aggregate.KindFloat64, aggregate.KindBool, aggregate.KindInt64, aggregate.KindString},
			StartMillis:   now.UnixMilli() - 40*3600_000,
			MeanGapMillis: 30 * 3600_000 / int64(events),
			GapFraction:   -1,
			Cardinality:   8,
		})
	}
	return out
}

func eventObject(user string, ev aggregatetest.Event) map[string]any {
	m := map[string]any{"user_id": user, "ts": ev.Millis}
	for f, v := range ev.Fields {
		switch v.Kind {
		case aggregate.KindFloat64:
			m[fieldNames[f]] = v.F
		case aggregate.KindInt64:
			m[fieldNames[f]] = v.I
		case aggregate.KindBool:
			m[fieldNames[f]] = v.I == 1
		case aggregate.KindString:
			m[fieldNames[f]] = v.S
		}
	}
	return m
}
