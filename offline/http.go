package offline

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/featured-dev/featured/featurestore"
	"github.com/featured-dev/featured/internal/bytesize"
	"github.com/featured-dev/featured/offline/export"
	"github.com/featured-dev/featured/offline/skew"
)

// DefaultMaxSpineBytes bounds an uploaded spine.
const DefaultMaxSpineBytes = 1 << 30

// StatsTrailer is the HTTP trailer in which ExportHandler reports a complete
// export's Stats, as JSON. It follows the stream's end-of-stream marker, so
// a client reads it after the whole body (Go: http.Response.Trailer).
const StatsTrailer = "Featured-Export-Stats"

// HandlerOptions configure the HTTP handlers. The zero value
// is usable; a field zero or negative takes its default.
type HandlerOptions struct {
	// MaxSpineBytes bounds an uploaded spine. The default value is
	// DefaultMaxSpineBytes (1 GiB).
	MaxSpineBytes int64
	// MemoryBytes is the export.Request.MemoryBytes of every export
	// ExportHandler runs, and the most a request's ?memory= may ask for
	// (it may ask for less).
	// The default value is export.DefaultMemoryBytes (512 MiB).
	MemoryBytes int64
	// TempDir holds uploaded spines, exports' spill files and
	// VerifySkewHandler's sample spines. The directory must exist. The
	// default is os.TempDir().
	TempDir string
	// Done, when set, is told of every export, backfill and verify-skew
	// run that got past its request checks, when it ends, on the request's
	// goroutine; it must not block. featured serve records it in metrics.
	// Nil: not called.
	Done func(Job)
	// Tracer, when set, is every export's export.Request.Tracer: a span
	// per export and phase, children of the request's span. Nil: none.
	Tracer export.Tracer
}

// Job reports one finished offline run to HandlerOptions.Done.
type Job struct {
	Kind string // "export", "backfill" or "verify_skew"
	Err  error  // nil when it succeeded
	Took time.Duration
	// Rows is what the run produced: an export's rows, a backfill's
	// entities, a verify-skew's values compared.
	Rows int64
	// Spilled is set when an export spilled to disk (its working set went
	// past its memory); SpilledBytes is what its spill files held.
	Spilled      bool
	SpilledBytes int64
	// MatchRate is a verify-skew's match rate in percent; 0 otherwise.
	MatchRate float64
}

func (o *HandlerOptions) done(j Job, start time.Time) {
	if o.Done != nil {
		j.Took = time.Since(start)
		o.Done(j)
	}
}

// EnsureDefaults fills zero or negative fields with their defaults.
func (o *HandlerOptions) EnsureDefaults() {
	if o.MaxSpineBytes <= 0 {
		o.MaxSpineBytes = DefaultMaxSpineBytes
	}
	if o.MemoryBytes <= 0 {
		o.MemoryBytes = export.DefaultMemoryBytes
	}
}

// ExportHandler serves POST /v1/export with x: the request body is the
// spine (Parquet, or CSV; by Content-Type application/vnd.apache.parquet or
// text/csv, or ?format=), the query names the features:
//
//	?features=view:feat,view@v2:feat | ?service=name
//	&mode=served|event &time_column=event_timestamp &statuses=true &full_names=true
//	&memory=64MiB
//
// memory (bytes, or KiB, MiB, GiB) sets the export's working-set budget at
// or below opts.MemoryBytes for this request; it cannot raise it.
//
// The answer is an Arrow IPC stream (application/vnd.apache.arrow.stream)
// followed by the StatsTrailer trailer. Bad input (export.ErrBadInput) and other
// failures before the stream begins are returned, for the router to answer
// (featured serve: a 400 or 500 in serving's error shape; a bad memory value
// before the body is read); a failure after the stream began cuts the
// connection, so the stream has no end-of-stream marker and no reader takes
// it for complete.
func ExportHandler(x *export.Exporter, opts HandlerOptions) HandlerFunc {
	opts.EnsureDefaults()
	return func(w http.ResponseWriter, r *http.Request) error {
		q := r.URL.Query()
		req := export.Request{
			Service:     q.Get("service"),
			Mode:        export.Mode(q.Get("mode")),
			TimeColumn:  q.Get("time_column"),
			Statuses:    q.Get("statuses") == "true" || q.Get("statuses") == "1",
			FullNames:   q.Get("full_names") == "true" || q.Get("full_names") == "1",
			MemoryBytes: opts.MemoryBytes,
			Tracer:      opts.Tracer,
			TempDir:     opts.TempDir,
		}
		if q.Has("memory") {
			s := q.Get("memory")
			n, err := bytesize.Parse(s)
			switch {
			case err != nil:
				return badInput("memory: %v", err)
			case n == 0:
				return badInput("memory: %q: want at least 1 byte", s)
			case n > opts.MemoryBytes:
				return badInput("memory: %s is above this server's export memory limit of %s (featured serve --export-memory)",
					s, bytesize.Format(opts.MemoryBytes))
			}
			req.MemoryBytes = n
		}
		if f := q.Get("features"); f != "" {
			req.Features = strings.Split(f, ",")
		}
		format := q.Get("format")
		if format == "" {
			mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
			switch mt {
			case "application/vnd.apache.parquet", "application/x-parquet", "application/parquet":
				format = "parquet"
			case "text/csv":
				format = "csv"
			default:
				return badInput("spine format: send Content-Type application/vnd.apache.parquet or text/csv, or ?format=parquet|csv")
			}
		}
		if r.ContentLength > opts.MaxSpineBytes {
			return spineTooLarge(opts.MaxSpineBytes)
		}
		body := http.MaxBytesReader(w, r.Body, opts.MaxSpineBytes)
		sink := &httpSink{w: w}
		var st export.Stats
		var err error
		start := time.Now()
		if format == "csv" && r.ContentLength > 0 {
			// Read as it arrives: the export keeps the rows it needs
			// (spilling ones copy the spine for their second pass).
			st, err = x.ExportCSV(r.Context(), body, r.ContentLength, req, sink)
		} else {
			// A Parquet spine is read from its footer, at the end: it
			// needs a file (so does a CSV body of unknown length, to
			// size the export's buckets).
			st, err = exportFromFile(r, x, body, format, req, sink, opts)
		}
		opts.done(Job{Kind: "export", Err: err, Rows: st.Rows, Spilled: st.SpillUsed, SpilledBytes: st.SpilledBytes}, start)
		if err != nil {
			if !sink.begun {
				return spineReadErr(err, opts.MaxSpineBytes)
			}
			panic(http.ErrAbortHandler) // cut the stream: no end-of-stream marker
		}
		if err := sink.s.Close(); err != nil {
			panic(http.ErrAbortHandler)
		}
		stats, _ := json.Marshal(st)
		w.Header().Set(StatsTrailer, string(stats))
		return nil
	}
}

// exportFromFile copies the spine into a file under opts.TempDir, removed
// after the export.
func exportFromFile(r *http.Request, x *export.Exporter, body io.Reader, format string, req export.Request, sink export.Sink, opts HandlerOptions) (export.Stats, error) {
	f, err := os.CreateTemp(opts.TempDir, "featured-spine-*")
	if err != nil {
		return export.Stats{}, fmt.Errorf("offline: spine file: %w", err)
	}
	defer os.Remove(f.Name())
	n, err := io.Copy(f, body)
	f.Close()
	if err != nil {
		return export.Stats{}, fmt.Errorf("offline: read spine: %w", err)
	}
	if n == 0 {
		return export.Stats{}, badInput("empty spine")
	}
	return x.Export(r.Context(), f.Name(), format, req, sink)
}

// ErrSpineTooLarge is an export spine over HandlerOptions.MaxSpineBytes
// (featured serve answers 413); it matches export.ErrBadInput too.
var ErrSpineTooLarge = fmt.Errorf("%w: spine too large", export.ErrBadInput)

func spineTooLarge(limit int64) error {
	return fmt.Errorf("%w: over %d bytes (the server's spine size limit)", ErrSpineTooLarge, limit)
}

// spineReadErr tells a body over the size limit from other errors. A body
// that came too slowly keeps its read error (os.ErrDeadlineExceeded), which
// the router maps (featured serve: 408); any other read error is the
// client's (400).
func spineReadErr(err error, limit int64) error {
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return spineTooLarge(limit)
	case errors.Is(err, os.ErrDeadlineExceeded), errors.Is(err, export.ErrBadInput):
		return err
	case errors.Is(err, io.ErrUnexpectedEOF):
		return badInput("read spine: %v", err)
	}
	return err
}

type httpSink struct {
	w     http.ResponseWriter
	s     *export.IPCStream
	begun bool
}

func (h *httpSink) Begin(sc *arrow.Schema) error {
	h.begun = true
	h.w.Header().Set("Content-Type", "application/vnd.apache.arrow.stream")
	h.w.Header().Set("Trailer", StatsTrailer)
	h.w.WriteHeader(http.StatusOK)
	h.s = export.NewIPCStream(h.w)
	return h.s.Begin(sc)
}

func (h *httpSink) Write(rec arrow.RecordBatch) error { return h.s.Write(rec) }

// HandlerFunc is an HTTP handler that returns its error instead of writing
// it: the caller's router writes it (featured serve: serving's one error
// shape, bad input (export.ErrBadInput) as 400, anything else by serving's error
// table). A handler that has begun its response handles its errors itself
// (ExportHandler cuts the connection).
type HandlerFunc func(w http.ResponseWriter, r *http.Request) error

// BackfillHandler serves POST /v1/backfill?view=NAME[&version=N]: Backfill
// of the view version (the latest when version is absent in x's registry)
// from x's log into store. It
// answers {"view": ..., "version": N, "entities": n} once every shard has
// switched.
func BackfillHandler(x *export.Exporter, store *featurestore.Store, opts HandlerOptions) HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		if err := noBody(r); err != nil {
			return err
		}
		q := r.URL.Query()
		ver := 0
		if s := q.Get("version"); s != "" {
			n, err := strconv.Atoi(strings.TrimPrefix(s, "v"))
			if err != nil || n < 1 {
				return badInput("version %q: want 1, 2, ...", s)
			}
			ver = n
		}
		v, err := x.Registry().Snapshot().View(q.Get("view"), ver)
		if err != nil {
			return fmt.Errorf("%w: %w", export.ErrBadInput, err)
		}
		start := time.Now()
		n, err := Backfill(r.Context(), store, x.Log(), v)
		opts.done(Job{Kind: "backfill", Err: err, Rows: int64(n)}, start)
		if err != nil {
			return err
		}
		body, _ := json.Marshal(map[string]any{"view": v.Name, "version": v.Version, "entities": n})
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
		return nil
	}
}

// VerifySkewHandler serves POST /v1/verify-skew: skew.Verify with x over
// the sampler's current samples, answered as a skew.Report in JSON. Its sample
// spines go to opts.TempDir.
func VerifySkewHandler(x *export.Exporter, s *skew.Sampler, opts HandlerOptions) HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		if err := noBody(r); err != nil {
			return err
		}
		if s == nil {
			return badInput("sampling is off: start the server with --skew-sample-every N")
		}
		start := time.Now()
		rep, err := skew.Verify(r.Context(), x, s.Samples(), opts.TempDir)
		j := Job{Kind: "verify_skew", Err: err}
		if err == nil {
			j.Rows, j.MatchRate = int64(rep.Values), rep.MatchRate
		}
		opts.done(j, start)
		if err != nil {
			return err
		}
		body, _ := json.Marshal(rep)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
		return nil
	}
}

// noBody refuses a request with a body: the handler would ignore it, and a
// client sending one has misunderstood the endpoint (the query carries
// everything).
func noBody(r *http.Request) error {
	if r.ContentLength == 0 || r.Body == nil || r.Body == http.NoBody {
		return nil
	}
	var one [1]byte
	if n, _ := io.ReadFull(r.Body, one[:]); n == 0 {
		return nil // chunked, but empty
	}
	return badInput("this endpoint takes no request body; the query names what to do")
}

// badInput is an error the router answers 400 for: the request's fault.
func badInput(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{export.ErrBadInput}, args...)...)
}
