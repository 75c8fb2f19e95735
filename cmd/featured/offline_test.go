package main

import (
	"context"
	"encoding/csv"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/featured-dev/featured/aggregate"
	"github.com/featured-dev/featured/aggregate/aggregatetest"
	"github.com/featured-dev/featured/registry"
)

// TestExportEndToEnd: push through the real binary, look up every feature
// of every user, then `featured export` a spine of those (user, read time)
// pairs through the server and, stopped, straight from the data dir: both
// files hold exactly the online answers. Bad input leaves no file.
func TestExportEndToEnd(t *testing.T) {
	dir := t.TempDir()
	defs := defsWith("push", "")
	defsFile := filepath.Join(dir, "defs.yaml")
	if err := os.WriteFile(defsFile, []byte(defs), 0o644); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(dir, "data")
	s := startServer(t, data, "--apply", defsFile, "--skew-sample-every", "1")
	streams := streamsFor(6, 11, 80, time.Now())
	for i := 0; i < 80; i += 20 {
		var batch []map[string]any
		for j := i; j < i+20; j++ {
			for u, evs := range streams {
				batch = append(batch, eventObject(u, evs[j]))
			}
		}
		if code, body := s.post(t, "/v1/push", map[string]any{"source": "tx", "events": batch}); code != 200 {
			t.Fatalf("push: %d %s", code, body)
		}
	}
	view := compiledView(t, defs, "spend")
	online := s.answers(t, view, streams)
	spine := writeCSVSpine(t, dir, online)
	refs := viewRefs(view)

	viaServer := filepath.Join(dir, "via-server.parquet")
	if out, err := s.cli(t, "export", "--spine", spine, "--features", strings.Join(refs, ","), "--out", viaServer, "--statuses"); err != nil {
		t.Fatalf("export: %v\n%s", err, out)
	}
	checkExport(t, viaServer, view, online)

	bad := filepath.Join(dir, "bad.parquet")
	out, err := s.cli(t, "export", "--spine", spine, "--features", "spend:nope", "--out", bad)
	if err == nil || !strings.Contains(err.Error(), "400") || !strings.Contains(err.Error(), "nope") {
		t.Fatalf("export of an unknown feature: %v\n%s", err, out)
	}
	if _, err := os.Stat(bad); !os.IsNotExist(err) {
		t.Fatalf("a failed export left %s", bad)
	}

	// A view applied now and backfilled answers what the view that saw the
	// whole stream answers.
	mirrorDefs := defs + strings.Replace(defs[strings.Index(defs, "  - name: spend"):], "name: spend", "name: mirror", 1)
	mirrorFile := filepath.Join(dir, "mirror.yaml")
	if err := os.WriteFile(mirrorFile, []byte(mirrorDefs), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := s.cli(t, "apply", "-f", mirrorFile); err != nil {
		t.Fatalf("apply: %v\n%s", err, out)
	}
	if out, err := s.cli(t, "backfill", "mirror@v1"); err != nil || !strings.Contains(out, `"entities": 6`) {
		t.Fatalf("backfill: %v\n%s", err, out)
	}
	mirror := compiledView(t, mirrorDefs, "mirror")
	var users []string
	for u := range streams {
		users = append(users, u)
	}
	a, b := s.lookup(t, viewRefs(view), users), s.lookup(t, viewRefs(mirror), users)
	for i := range a.Rows {
		for f := range a.Rows[i].Values {
			if string(a.Rows[i].Values[f]) != string(b.Rows[i].Values[f]) || a.Rows[i].Statuses[f] != b.Rows[i].Statuses[f] {
				t.Errorf("%s %s: spend %s, backfilled mirror %s", users[i], view.Features[f].Name, a.Rows[i].Values[f], b.Rows[i].Values[f])
			}
		}
	}

	// Every read was sampled (--skew-sample-every 1): recomputed offline,
	// all match, across the backfill's switch too.
	out, err = s.cli(t, "verify-skew")
	if err != nil || !strings.Contains(out, "match rate 100.000%") {
		t.Fatalf("verify-skew: %v\n%s", err, out)
	}
	t.Log(strings.TrimSpace(out))

	s.stop(t)
	local := filepath.Join(dir, "local.parquet")
	var stdout, stderr strings.Builder
	if err := run(context.Background(), []string{"export", "--data-dir", data, "--spine", spine, "--features", strings.Join(refs, ","), "--out", local, "--statuses"}, &stdout, &stderr); err != nil {
		t.Fatalf("export --data-dir: %v\n%s", err, stderr.String())
	}
	checkExport(t, local, view, online)
}

// answer is one online lookup: a user's features at the server's read time.
type answer struct {
	user    string
	atMs    int64
	results []aggregate.Result
}

// answers looks up every feature of view for every user.
func (s *server) answers(t *testing.T, view *registry.View, streams map[string][]aggregatetest.Event) []answer {
	t.Helper()
	var users []string
	for u := range streams {
		users = append(users, u)
	}
	r := s.lookup(t, viewRefs(view), users)
	specs := view.Layout.Specs()
	var out []answer
	for i, row := range r.Rows {
		a := answer{user: users[i], atMs: r.ReadAtMs}
		for f, spec := range specs {
			a.results = append(a.results, resultOf(t, spec.Op.ResultKind(spec.FieldKind), spec.FieldKind, row.Values[f], row.Statuses[f], row.EventMs[f]))
		}
		out = append(out, a)
	}
	return out
}

func viewRefs(view *registry.View) []string {
	var refs []string
	for _, f := range view.Features {
		refs = append(refs, fmt.Sprintf("%s@v%d:%s", view.Name, view.Version, f.Name))
	}
	return refs
}

func writeCSVSpine(t *testing.T, dir string, online []answer) string {
	t.Helper()
	path := filepath.Join(dir, "spine.csv")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w := csv.NewWriter(f)
	w.Write([]string{"user_id", "event_timestamp", "label"})
	for i, a := range online {
		w.Write([]string{a.user, time.UnixMilli(a.atMs).UTC().Format(time.RFC3339Nano), strconv.Itoa(i)})
	}
	w.Flush()
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// checkExport reads an exported Parquet file and compares every feature of
// every row with the online answer, bit for bit, status included.
func checkExport(t *testing.T, path string, view *registry.View, online []answer) {
	t.Helper()
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
	defer tbl.Release()
	if int(tbl.NumRows()) != len(online) {
		t.Fatalf("%s: %d rows, want %d", path, tbl.NumRows(), len(online))
	}
	col := func(name string) arrow.Array {
		idx := tbl.Schema().FieldIndices(name)
		if len(idx) != 1 {
			t.Fatalf("%s: no column %q", path, name)
		}
		return tbl.Column(idx[0]).Data().Chunk(0)
	}
	mismatches := 0
	for f, feat := range view.Features {
		vals, stats := col(feat.Name), col(feat.Name+"__status").(*array.String)
		for i, a := range online {
			want := a.results[f]
			got := aggregate.Result{Value: cellValue(vals, i)}
			switch stats.Value(i) {
			case "PRESENT":
				got.Status = aggregate.StatusPresent
			case "NULL_VALUE":
				got.Status = aggregate.StatusNull
			default:
				got.Status = aggregate.StatusNotFound
			}
			want.EventMillis = 0
			if got.Status != want.Status || !aggregatetest.Equal(got, want, 0) {
				mismatches++
				if mismatches < 10 {
					t.Errorf("%s row %d %s: export %+v, online %+v", filepath.Base(path), i, feat.Name, got, want)
				}
			}
		}
	}
	if mismatches > 0 {
		t.Fatalf("%s: %d mismatches", path, mismatches)
	}
}

func cellValue(a arrow.Array, i int) aggregate.Value {
	if a.IsNull(i) {
		return aggregate.Value{}
	}
	switch a := a.(type) {
	case *array.Int64:
		return aggregate.Value{Kind: aggregate.KindInt64, I: a.Value(i)}
	case *array.Float64:
		return aggregate.Value{Kind: aggregate.KindFloat64, F: a.Value(i)}
	case *array.String:
		return aggregate.Value{Kind: aggregate.KindString, S: a.Value(i)}
	case *array.Boolean:
		v := aggregate.Value{Kind: aggregate.KindBool}
		if a.Value(i) {
			v.I = 1
		}
		return v
	case *array.List:
		s, e := a.ValueOffsets(i)
		v := aggregate.Value{Kind: aggregate.KindList, L: []aggregate.Value{}}
		for j := s; j < e; j++ {
			v.L = append(v.L, cellValue(a.ListValues(), int(j)))
		}
		return v
	}
	return aggregate.Value{}
}
