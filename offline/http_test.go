package offline

import (
	"encoding/json"
	"errors"
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

// TestHandlerMemory: the export handler runs every export under its
// HandlerOptions.MemoryBytes, which ?memory= may lower but not raise, and
// reports in the stats trailer whether the export spilled. An export that
// spills gives the same values as one in memory. A bad ?memory= is a 400
// before the body is read; the spine and spill files go to TempDir.
func TestHandlerMemory(t *testing.T) {
	dir := t.TempDir()
	r := newRig(t, dir, 1_800_000_000_000, eventlog.Options{})
	defer r.close()
	samples := r.streamTo(t, 7, 6, 60)
	spine := filepath.Join(dir, "spine.parquet")
	writeSpine(t, spine, samples)
	body, err := os.ReadFile(spine)
	if err != nil {
		t.Fatal(err)
	}
	query := "?statuses=true&full_names=true&features=" + strings.Join(allRefs(r.reg), ",")
	tmp := filepath.Join(dir, "tmp")
	if err := os.Mkdir(tmp, 0o755); err != nil {
		t.Fatal(err)
	}
	post := func(t *testing.T, h HandlerFunc, query string, spine []byte) *http.Response {
		t.Helper()
		srv := httptest.NewServer(serve(h))
		t.Cleanup(srv.Close)
		resp, err := http.Post(srv.URL+"/v1/export"+query, "application/vnd.apache.parquet", strings.NewReader(string(spine)))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		return resp
	}
	// export posts the spine and checks every value against the online
	// answers; it returns the stats trailer.
	export := func(t *testing.T, opts HandlerOptions, query string) export.Stats {
		t.Helper()
		resp := post(t, ExportHandler(r.x, opts), query, body)
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
		tr := resp.Trailer.Get(StatsTrailer)
		if err := json.Unmarshal([]byte(tr), &st); err != nil {
			t.Fatalf("stats trailer %q: %v", tr, err)
		}
		if st.Rows != int64(len(samples)) {
			t.Fatalf("stats %+v: want %d rows", st, len(samples))
		}
		return st
	}
	// status posts and wants code with an error saying want.
	status := func(t *testing.T, opts HandlerOptions, query string, spine []byte, code int, want string) {
		t.Helper()
		resp := post(t, ExportHandler(r.x, opts), query, spine)
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != code || !strings.Contains(string(b), want) {
			t.Fatalf("%s: %d %s, want %d saying %q", query, resp.StatusCode, b, code, want)
		}
	}
	noLeftovers := func(t *testing.T) {
		t.Helper()
		if ents, _ := os.ReadDir(tmp); len(ents) != 0 {
			t.Fatalf("left %s in the temp dir", ents[0].Name())
		}
	}

	t.Run("default", func(t *testing.T) {
		if st := export(t, HandlerOptions{TempDir: tmp}, query); st.SpillUsed || st.Buckets != 1 || st.SpilledBytes != 0 {
			t.Fatalf("stats %+v: want an export in memory", st)
		}
		noLeftovers(t)
	})
	t.Run("server budget", func(t *testing.T) {
		if st := export(t, HandlerOptions{MemoryBytes: 1 << 10, TempDir: tmp}, query); !st.SpillUsed || st.Buckets < 2 {
			t.Fatalf("stats %+v: want a spill under a 1 KiB budget", st)
		}
		noLeftovers(t)
	})
	t.Run("lowered by the request", func(t *testing.T) {
		if st := export(t, HandlerOptions{TempDir: tmp}, query+"&memory=1KiB"); !st.SpillUsed || st.Buckets < 2 {
			t.Fatalf("stats %+v: want a spill under ?memory=1KiB", st)
		}
		if st := export(t, HandlerOptions{MemoryBytes: 1 << 30}, query+"&memory=512MiB"); st.SpillUsed {
			t.Fatalf("stats %+v: want an export in memory", st)
		}
	})
	t.Run("bad memory", func(t *testing.T) {
		opts := HandlerOptions{MemoryBytes: 1 << 10, TempDir: tmp}
		status(t, opts, query+"&memory=2KiB", body, http.StatusBadRequest, "above this server's export memory limit of 1KiB")
		status(t, HandlerOptions{}, query+"&memory=1GiB", body, http.StatusBadRequest, "limit of 512MiB")
		// An empty body would be "empty spine": the memory value is
		// refused first.
		status(t, opts, query+"&memory=lots", nil, http.StatusBadRequest, `memory: "lots" is not a size`)
		status(t, opts, query+"&memory=1MB", nil, http.StatusBadRequest, "MB is ambiguous")
		status(t, opts, query+"&memory=0", nil, http.StatusBadRequest, "at least 1 byte")
		status(t, opts, query+"&memory=-5", nil, http.StatusBadRequest, "not a size")
		status(t, opts, query+"&memory=", nil, http.StatusBadRequest, "not a size")
		noLeftovers(t)
	})
	t.Run("temp dir", func(t *testing.T) {
		gone := filepath.Join(dir, "gone")
		status(t, HandlerOptions{TempDir: gone}, query, body, http.StatusInternalServerError, gone)
	})
}

func TestBackfillAndVerifySkewRefuseBodies(t *testing.T) {
	x := &export.Exporter{}
	for name, h := range map[string]HandlerFunc{"backfill": BackfillHandler(x, nil, HandlerOptions{}), "verify-skew": VerifySkewHandler(x, nil, HandlerOptions{})} {
		rec := httptest.NewRecorder()
		serve(h).ServeHTTP(rec, httptest.NewRequest("POST", "/v1/"+name+"?view=v", strings.NewReader("{}")))
		if rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), "takes no request body") {
			t.Errorf("%s with a body: %d %s", name, rec.Code, rec.Body)
		}
	}
}

// serve answers h's errors as featured serve's router does for these tests'
// purposes: 400 for export.ErrBadInput, else 500, with the error's text (serving's
// tests check the real error shape).
func serve(h HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := h(w, r); err != nil {
			st := http.StatusInternalServerError
			if errors.Is(err, export.ErrBadInput) {
				st = http.StatusBadRequest
			}
			http.Error(w, err.Error(), st)
		}
	})
}
