package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow/ipc"

	"github.com/featured-dev/featured/featurestore"
	"github.com/featured-dev/featured/internal/bytesize"
	"github.com/featured-dev/featured/offline"
	"github.com/featured-dev/featured/offline/eventlog"
	"github.com/featured-dev/featured/offline/export"
	"github.com/featured-dev/featured/offline/skew"
	"github.com/featured-dev/featured/registry"
)

// exportCmd is `featured export`: a point-in-time training set as a Parquet
// file, computed by a running server (--server, the default) or straight
// from a data dir whose server is stopped (--data-dir). Either way the file
// appears at --out only when complete.
func exportCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("export", flag.ContinueOnError)
	fs.SetOutput(stderr)
	server := clientFlags(fs)
	dataDir := fs.String("data-dir", "", "read this data dir directly (the server must be stopped) instead of asking --server")
	spine := fs.String("spine", "", "spine file: .parquet or .csv with the entity join key(s) and a time column")
	features := fs.String("features", "", "comma-separated feature references (view:feature, view@v2:feature)")
	service := fs.String("service", "", "feature service instead of --features")
	out := fs.String("out", "", "output Parquet file")
	mode := fs.String("mode", "served", "served (what online answered at each instant) or event (event time <= T)")
	timeCol := fs.String("time-column", export.DefaultTimeColumn, "the spine's time column")
	statuses := fs.Bool("statuses", false, "add a <feature>__status column per feature")
	fullNames := fs.Bool("full-names", false, "name columns view__feature")
	var memory bytesize.Size
	fs.Var(&memory, "memory", "working set of the export (bytes, KiB, MiB or GiB; default 512MiB, and a server's --export-memory at most); bigger exports spill to disk")
	tempDir := fs.String("temp-dir", "", "with --data-dir: existing directory for spill files (default: the OS temp dir); a server uses its --export-temp-dir")
	timeout := timeoutFlag(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *spine == "" || *out == "" {
		return errors.New("export: --spine and --out are required")
	}
	req := export.Request{Service: *service, Mode: export.Mode(*mode), TimeColumn: *timeCol, Statuses: *statuses, FullNames: *fullNames,
		MemoryBytes: int64(memory), TempDir: *tempDir}
	if *features != "" {
		req.Features = strings.Split(*features, ",")
	}
	if *tempDir != "" && *dataDir == "" {
		given := envName("temp-dir")
		fs.Visit(func(f *flag.Flag) {
			if f.Name == "temp-dir" {
				given = "--temp-dir"
			}
		})
		return fmt.Errorf("export: %s is only for --data-dir exports; a server spills to the directory of its own --export-temp-dir", given)
	}
	if err := checkDir(*tempDir); err != nil {
		return fmt.Errorf("export: --temp-dir: %w", err)
	}
	if *dataDir != "" {
		if *timeout > 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, *timeout)
			defer cancel()
		}
		return withLocalExporter(*dataDir, func(x *export.Exporter) error {
			st, err := x.ExportFile(ctx, *spine, "", req, *out)
			if err != nil {
				return fmt.Errorf("export: %w", err)
			}
			fmt.Fprintf(stdout, "wrote %s: %d rows, %d features%s\n", *out, st.Rows, st.Features, spillNote(st))
			return nil
		})
	}
	return remoteExport(ctx, newClient(server, *timeout), *spine, req, *out, stdout)
}

// withLocalExporter opens a stopped server's data dir (registry, offline
// log, and the store, whose open cuts the log back to what the store
// committed) and runs fn.
func withLocalExporter(dataDir string, fn func(*export.Exporter) error) error {
	reg, err := registry.Open(filepath.Join(dataDir, "registry.json"))
	if err != nil {
		return fmt.Errorf("open %s (is a server running on it? use --server): %w", dataDir, err)
	}
	defer reg.Close()
	partitions, err := featurestore.StoredPartitions(filepath.Join(dataDir, "store"))
	if err != nil {
		return fmt.Errorf("data dir %s: %w", dataDir, err)
	}
	olog, err := eventlog.Open(filepath.Join(dataDir, "offline"), eventlog.Options{Retention: -1})
	if err != nil {
		return err
	}
	defer olog.Close()
	store, err := featurestore.Open(filepath.Join(dataDir, "store"), featurestore.Options{Partitions: partitions, EventLog: olog, GCInterval: -1, Layouts: layoutsOf(reg)})
	if err != nil {
		return fmt.Errorf("open %s (is a server running on it? use --server): %w", dataDir, err)
	}
	defer store.Close()
	return fn(export.NewExporter(reg, olog))
}

// remoteExport posts the spine to the server's /v1/export and writes the
// Arrow stream it answers into a Parquet file, atomically.
func remoteExport(ctx context.Context, c *client, spine string, req export.Request, out string, stdout io.Writer) error {
	f, err := os.Open(spine)
	if err != nil {
		return fmt.Errorf("export: %w", err)
	}
	defer f.Close()
	q := url.Values{}
	if len(req.Features) > 0 {
		q.Set("features", strings.Join(req.Features, ","))
	}
	if req.Service != "" {
		q.Set("service", req.Service)
	}
	q.Set("mode", string(req.Mode))
	q.Set("time_column", req.TimeColumn)
	q.Set("statuses", strconv.FormatBool(req.Statuses))
	q.Set("full_names", strconv.FormatBool(req.FullNames))
	if req.MemoryBytes > 0 {
		q.Set("memory", bytesize.Format(req.MemoryBytes))
	}
	ct := "application/vnd.apache.parquet"
	if strings.HasSuffix(strings.ToLower(spine), ".csv") {
		ct = "text/csv"
	}
	hr, err := c.newRequest(ctx, http.MethodPost, c.server+"/v1/export?"+q.Encode(), f)
	if err != nil {
		return err
	}
	hr.Header.Set("Content-Type", ct)
	resp, err := c.http.Do(hr)
	if err != nil {
		return fmt.Errorf("reach server: %w (is `featured serve` running at %s? set --server, or --data-dir for a stopped one)", err, c.server)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("export: %s: %s", resp.Status, strings.TrimSpace(string(b)))
	}
	rd, err := ipc.NewReader(resp.Body)
	if err != nil {
		return fmt.Errorf("export: read answer: %w", err)
	}
	defer rd.Release()
	sink := export.NewParquetFile(out)
	if err := sink.Begin(rd.Schema()); err != nil {
		return err
	}
	var rows int64
	for rd.Next() {
		rec := rd.RecordBatch()
		rows += rec.NumRows()
		if err := sink.Write(rec); err != nil {
			sink.Abort()
			return err
		}
	}
	if err := rd.Err(); err != nil {
		sink.Abort()
		return fmt.Errorf("export: the server's stream broke off: %w", err)
	}
	if err := sink.Commit(); err != nil {
		return err
	}
	// The stats trailer follows the end-of-stream marker.
	io.Copy(io.Discard, resp.Body)
	var st export.Stats
	if s := resp.Trailer.Get(offline.StatsTrailer); s != "" {
		json.Unmarshal([]byte(s), &st) // a server without the trailer: no note
	}
	fmt.Fprintf(stdout, "wrote %s: %d rows%s\n", out, rows, spillNote(st))
	return nil
}

// spillNote says that an export spilled, and into how many buckets.
func spillNote(st export.Stats) string {
	if !st.SpillUsed {
		return ""
	}
	return fmt.Sprintf(" (over its memory budget: spilled to disk in %d buckets)", st.Buckets)
}

// backfillCmd is `featured backfill VIEW[@vN]`: the server rebuilds the
// view version's online state from the offline log, shard by shard, and
// ingestion continues into it.
func backfillCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("backfill", flag.ContinueOnError)
	fs.SetOutput(stderr)
	server := clientFlags(fs)
	timeout := timeoutFlag(fs)
	// VIEW may come before or after the flags.
	var pos []string
	for len(args) > 0 {
		if err := parseFlags(fs, args); err != nil {
			return err
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if len(pos) != 1 {
		return fmt.Errorf("backfill: want VIEW or VIEW@vN, got %q", pos)
	}
	name, ver, _ := strings.Cut(pos[0], "@")
	q := url.Values{"view": {name}}
	if ver != "" {
		q.Set("version", ver)
	}
	out, err := newClient(server, *timeout).do(ctx, http.MethodPost, "/v1/backfill?"+q.Encode(), "", nil)
	if err != nil {
		return err
	}
	printJSON(stdout, out)
	return nil
}

// verifySkewCmd is `featured verify-skew`: the server recomputes the
// lookups it sampled from the offline log and compares them bit for bit.
// Any mismatch makes the command fail after printing them all.
func verifySkewCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("verify-skew", flag.ContinueOnError)
	fs.SetOutput(stderr)
	server := clientFlags(fs)
	asJSON := fs.Bool("json", false, "print the report as JSON")
	timeout := timeoutFlag(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	out, err := newClient(server, *timeout).do(ctx, http.MethodPost, "/v1/verify-skew", "", nil)
	if err != nil {
		return err
	}
	var rep skew.Report
	if err := json.Unmarshal(out, &rep); err != nil {
		return fmt.Errorf("verify-skew: answer %q: %w", out, err)
	}
	if *asJSON {
		printJSON(stdout, out)
	} else {
		fmt.Fprintf(stdout, "match rate %.3f%%: %d of %d values in %d sampled reads", rep.MatchRate, rep.Matches, rep.Values, rep.Samples)
		if rep.ResolvedSameMillis > 0 {
			fmt.Fprintf(stdout, "; %d read in the millisecond of a commit matched the state before it", rep.ResolvedSameMillis)
		}
		if rep.Skipped > 0 {
			fmt.Fprintf(stdout, " (%d samples of deleted view versions skipped)", rep.Skipped)
		}
		fmt.Fprintln(stdout)
		for _, m := range rep.Mismatches {
			fmt.Fprintf(stdout, "MISMATCH %s entity %s at %s: online %s, offline %s\n", m.Feature, m.Entity,
				time.UnixMilli(m.AtMillis).UTC().Format(time.RFC3339Nano), m.Online, m.Offline)
		}
	}
	if len(rep.Mismatches) > 0 {
		return fmt.Errorf("verify-skew: %d mismatches", len(rep.Mismatches))
	}
	return nil
}
