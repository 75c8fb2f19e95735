package main

import (
	"context"
	"flag"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
)

// TestExportMemory runs the real binary with a 1 KiB export budget: an
// export through it spills (the CLI says so, from the server's stats
// trailer) and still holds the online answers, in a file identical to an
// in-memory export of the same spine. ?memory= above the server's budget
// and a malformed one are 400s; --temp-dir is refused with a server; the
// server's spine and spill files go to --export-temp-dir. Stopped, the data
// dir exports with --memory and --temp-dir, spilled or not, to the same
// file.
func TestExportMemory(t *testing.T) {
	dir := t.TempDir()
	defs := defsWith("push", "")
	defsFile := filepath.Join(dir, "defs.yaml")
	if err := os.WriteFile(defsFile, []byte(defs), 0o644); err != nil {
		t.Fatal(err)
	}
	spillDir := filepath.Join(dir, "spill")
	if err := os.Mkdir(spillDir, 0o755); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(dir, "data")
	s := startServer(t, data, "--apply", defsFile, "--export-memory", "1KiB", "--export-temp-dir", spillDir)
	streams := streamsFor(5, 21, 40, time.Now())
	var batch []map[string]any
	for u, evs := range streams {
		for _, ev := range evs {
			batch = append(batch, eventObject(u, ev))
		}
	}
	if code, body := s.post(t, "/v1/push", map[string]any{"source": "tx", "events": batch}); code != 200 {
		t.Fatalf("push: %d %s", code, body)
	}
	view := compiledView(t, defs, "spend")
	online := s.answers(t, view, streams)
	spine := writeCSVSpine(t, dir, online)
	features := strings.Join(viewRefs(view), ",")

	viaServer := filepath.Join(dir, "via-server.parquet")
	out, err := s.cli(t, "export", "--spine", spine, "--features", features, "--out", viaServer, "--statuses")
	if err != nil || !strings.Contains(out, "spilled to disk in") {
		t.Fatalf("export under --export-memory 1KiB: %v\n%s\nwant it to say it spilled", err, out)
	}
	checkExport(t, viaServer, view, online)
	if ents, _ := os.ReadDir(spillDir); len(ents) != 0 {
		t.Fatalf("the export left %s in --export-temp-dir", ents[0].Name())
	}

	refused := filepath.Join(dir, "refused.parquet")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--memory", "2KiB"}, "above this server's export memory limit of 1KiB"},
		{[]string{"--memory", "12XB"}, `invalid value "12XB" for flag -memory`},
		{[]string{"--memory", "0"}, "at least 1 byte"},
		{[]string{"--temp-dir", spillDir}, "--temp-dir is only for --data-dir exports"},
	} {
		args := append([]string{"export", "--spine", spine, "--features", features, "--out", refused}, tc.args...)
		if out, err := s.cli(t, args...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("export %s: %v\n%s\nwant an error saying %q", strings.Join(tc.args, " "), err, out, tc.want)
		}
	}
	if _, err := os.Stat(refused); !os.IsNotExist(err) {
		t.Fatalf("a refused export left %s", refused)
	}
	// ?memory= at or below the budget is taken; a malformed one is a 400.
	lowered := filepath.Join(dir, "lowered.parquet")
	if out, err := s.cli(t, "export", "--spine", spine, "--features", features, "--out", lowered, "--statuses", "--memory", "1000"); err != nil || !strings.Contains(out, "spilled") {
		t.Fatalf("export --memory 1000: %v\n%s", err, out)
	}
	spineBody, err := os.ReadFile(spine)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post(s.url+"/v1/export?memory=lots&features="+features, "text/csv", strings.NewReader(string(spineBody)))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 400 || !strings.Contains(string(b), "is not a size") {
		t.Fatalf("?memory=lots: %d %s, want 400", resp.StatusCode, b)
	}
	// With --export-temp-dir gone the server has nowhere to put the spine.
	if err := os.Remove(spillDir); err != nil {
		t.Fatal(err)
	}
	if out, err := s.cli(t, "export", "--spine", spine, "--features", features, "--out", refused); err == nil || !strings.Contains(err.Error(), spillDir) {
		t.Fatalf("export with --export-temp-dir removed: %v\n%s\nwant an error naming %s", err, out, spillDir)
	}
	s.stop(t)

	// Straight from the data dir: spilled into --temp-dir, and in memory.
	localTmp := filepath.Join(dir, "local-tmp")
	if err := os.Mkdir(localTmp, 0o755); err != nil {
		t.Fatal(err)
	}
	local := func(name string, extra ...string) (string, string) {
		t.Helper()
		path := filepath.Join(dir, name)
		var stdout, stderr strings.Builder
		args := append([]string{"export", "--data-dir", data, "--spine", spine, "--features", features, "--out", path, "--statuses"}, extra...)
		if err := run(context.Background(), args, &stdout, &stderr); err != nil {
			t.Fatalf("export %s: %v\n%s", strings.Join(extra, " "), err, stderr.String())
		}
		checkExport(t, path, view, online)
		return path, stdout.String()
	}
	spilled, out := local("local-spilled.parquet", "--memory", "1KiB", "--temp-dir", localTmp)
	if !strings.Contains(out, "spilled to disk in") {
		t.Fatalf("export --data-dir --memory 1KiB: %q, want it to say it spilled", out)
	}
	if ents, _ := os.ReadDir(localTmp); len(ents) != 0 {
		t.Fatalf("the export left %s in --temp-dir", ents[0].Name())
	}
	inMemory, out := local("local-memory.parquet", "--memory", "1GiB")
	if strings.Contains(out, "spilled") {
		t.Fatalf("export --data-dir --memory 1GiB: %q, want no spill", out)
	}
	for _, p := range []string{viaServer, lowered, spilled} {
		sameTable(t, p, inMemory)
	}
	var stderr strings.Builder
	err = run(context.Background(), []string{"export", "--data-dir", data, "--spine", spine, "--features", features,
		"--out", refused, "--temp-dir", filepath.Join(dir, "nope")}, io.Discard, &stderr)
	if err == nil || !strings.Contains(err.Error(), "--temp-dir") {
		t.Fatalf("export --temp-dir of a missing dir: %v, want an error naming --temp-dir", err)
	}
}

// sameTable fails unless the Parquet files a and b hold the same columns
// and values.
func sameTable(t *testing.T, a, b string) {
	t.Helper()
	read := func(path string) arrow.Table {
		pf, err := file.OpenParquetFile(path, false)
		if err != nil {
			t.Fatal(err)
		}
		defer pf.Close()
		fr, err := pqarrow.NewFileReader(pf, pqarrow.ArrowReadProperties{BatchSize: 1 << 20}, memory.DefaultAllocator)
		if err != nil {
			t.Fatal(err)
		}
		tbl, err := fr.ReadTable(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return tbl
	}
	ta, tb := read(a), read(b)
	defer ta.Release()
	defer tb.Release()
	if !array.TableEqual(ta, tb) {
		t.Fatalf("%s and %s differ:\n%s\n%s", filepath.Base(a), filepath.Base(b), ta.Schema(), tb.Schema())
	}
}

// TestExportMemoryFlags: --export-memory and --export-temp-dir fall back
// to FEATURED_EXPORT_MEMORY and FEATURED_EXPORT_TEMP_DIR; a bad size or a
// missing directory stops serve before it opens anything, naming the flag
// or the variable.
func TestExportMemoryFlags(t *testing.T) {
	parse := func(args ...string) (*serveConfig, error) {
		fs := flag.NewFlagSet("serve", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		c := serveFlags(fs)
		return c, parseFlags(fs, args)
	}
	c, err := parse()
	if err != nil || c.exportMemory != 512<<20 || c.exportTempDir != "" {
		t.Fatalf("defaults: memory %s, temp dir %q, %v", c.exportMemory, c.exportTempDir, err)
	}
	t.Setenv("FEATURED_EXPORT_MEMORY", "2GiB")
	t.Setenv("FEATURED_EXPORT_TEMP_DIR", "/from/env")
	if c, err = parse(); err != nil || c.exportMemory != 2<<30 || c.exportTempDir != "/from/env" {
		t.Fatalf("from the environment: memory %s, temp dir %q, %v", c.exportMemory, c.exportTempDir, err)
	}
	if c, err = parse("--export-memory", "64MiB"); err != nil || c.exportMemory != 64<<20 {
		t.Fatalf("the flag over the environment: memory %s, %v", c.exportMemory, err)
	}
	t.Setenv("FEATURED_EXPORT_MEMORY", "1MB")
	if _, err := parse(); err == nil || !strings.Contains(err.Error(), "FEATURED_EXPORT_MEMORY") || !strings.Contains(err.Error(), "MB is ambiguous") {
		t.Fatalf("FEATURED_EXPORT_MEMORY=1MB: %v, want an error naming it", err)
	}
	t.Setenv("FEATURED_EXPORT_MEMORY", "")
	os.Unsetenv("FEATURED_EXPORT_MEMORY")

	data := filepath.Join(t.TempDir(), "data")
	serveErr := func(args ...string) error {
		return run(context.Background(), append([]string{"serve", "--data-dir", data, "--http-addr", "127.0.0.1:0", "--grpc-addr", "127.0.0.1:0"}, args...), io.Discard, io.Discard)
	}
	if err := serveErr("--export-memory", "lots"); err == nil || !strings.Contains(err.Error(), "-export-memory") {
		t.Fatalf("--export-memory lots: %v, want a flag error naming it", err)
	}
	if err := serveErr("--export-temp-dir", filepath.Join(data, "nope")); err == nil || !strings.Contains(err.Error(), "--export-temp-dir") {
		t.Fatalf("--export-temp-dir of a missing dir: %v, want an error naming it", err)
	}
	if _, err := os.Stat(data); !os.IsNotExist(err) {
		t.Fatalf("a refused serve created %s", data)
	}
}
