package offline

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/ipc"

	"github.com/featured-dev/featured/offline/eventlog"
	"github.com/featured-dev/featured/offline/export"
)

// TestCSVSpineStreams: a CSV spine posted with its length is read from the
// request body by the export, never copied to a file first: an export in
// memory needs no TempDir at all, and one that spills copies the
// spine into its spill directory for its second pass, with the same
// values. A CSV spine over MaxSpineBytes is ErrSpineTooLarge, whether its
// Content-Length says so or its bytes do.
func TestCSVSpineStreams(t *testing.T) {
	dir := t.TempDir()
	r := newRig(t, dir, 1_800_000_000_000, eventlog.Options{})
	defer r.close()
	samples := r.streamTo(t, 7, 6, 60)
	var b strings.Builder
	b.WriteString("user_id,event_timestamp,label\n")
	for i, s := range samples {
		fmt.Fprintf(&b, "%s,%d,%d\n", s.user, s.at, i)
	}
	body := b.String()
	query := "?statuses=true&full_names=true&features=" + strings.Join(allRefs(r.reg), ",")

	post := func(t *testing.T, opts HandlerOptions, rd io.Reader) *http.Response {
		t.Helper()
		srv := httptest.NewServer(serve(ExportHandler(r.x, opts)))
		t.Cleanup(srv.Close)
		req, err := http.NewRequest("POST", srv.URL+"/v1/export"+query, rd)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "text/csv")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		return resp
	}
	check := func(t *testing.T, resp *http.Response) export.Stats {
		t.Helper()
		if resp.StatusCode != http.StatusOK {
			b, _ := io.ReadAll(resp.Body)
			t.Fatalf("%d %s", resp.StatusCode, b)
		}
		rd, err := ipc.NewReader(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		defer rd.Release()
		m := &memSink{schema: rd.Schema()}
		for rd.Next() {
			m.Write(rd.RecordBatch())
		}
		if err := rd.Err(); err != nil {
			t.Fatal(err)
		}
		compare(t, m, samples, true)
		io.Copy(io.Discard, resp.Body)
		var st export.Stats
		if err := json.Unmarshal([]byte(resp.Trailer.Get(StatsTrailer)), &st); err != nil || st.Rows != int64(len(samples)) {
			t.Fatalf("stats %+v (%v): want %d rows", st, err, len(samples))
		}
		return st
	}

	t.Run("in memory: no file", func(t *testing.T) {
		// A TempDir that does not exist fails any file made there (a
		// Parquet spine's upload answers 500, TestHandlerMemory "temp dir").
		gone := filepath.Join(dir, "gone")
		st := check(t, post(t, HandlerOptions{TempDir: gone}, strings.NewReader(body)))
		if st.SpillUsed {
			t.Fatalf("stats %+v: want an export in memory", st)
		}
		if _, err := os.Stat(gone); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("TempDir: %v, want it still absent", err)
		}
	})
	t.Run("spilling: spooled for the second pass", func(t *testing.T) {
		tmp := filepath.Join(dir, "spill")
		if err := os.Mkdir(tmp, 0o755); err != nil {
			t.Fatal(err)
		}
		st := check(t, post(t, HandlerOptions{TempDir: tmp, MemoryBytes: 1 << 10}, strings.NewReader(body)))
		if !st.SpillUsed {
			t.Fatalf("stats %+v: want a spill under a 1 KiB budget", st)
		}
		// The spooled spine alone is on disk: the spill bytes count it.
		if st.SpilledBytes < int64(len(body)) {
			t.Fatalf("stats %+v: %d spilled bytes, want at least the spine's %d", st, st.SpilledBytes, len(body))
		}
		if ents, _ := os.ReadDir(tmp); len(ents) != 0 {
			t.Fatalf("the export left %s in TempDir", ents[0].Name())
		}
	})
	t.Run("too large", func(t *testing.T) {
		limit := int64(len(body) - 10)
		h := ExportHandler(r.x, HandlerOptions{MaxSpineBytes: limit, TempDir: t.TempDir()})
		// By its Content-Length, before reading; by its bytes, when the
		// length says less than comes (a body as net/http hands it over
		// has no such lie, so the handler is called directly).
		for name, req := range map[string]*http.Request{
			"length": httptest.NewRequest("POST", "/v1/export"+query, strings.NewReader(body)),
			"bytes":  httptest.NewRequest("POST", "/v1/export"+query, strings.NewReader(body)),
		} {
			req.Header.Set("Content-Type", "text/csv")
			if name == "bytes" {
				req.ContentLength = 100
			}
			err := h(httptest.NewRecorder(), req)
			if !errors.Is(err, ErrSpineTooLarge) || !errors.Is(err, export.ErrBadInput) {
				t.Errorf("%s: err %v, want ErrSpineTooLarge", name, err)
			}
		}
	})
}
