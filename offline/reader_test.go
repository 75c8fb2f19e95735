package offline

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/featured-dev/featured/aggregate"
	"github.com/featured-dev/featured/aggregate/aggregatetest"
	"github.com/featured-dev/featured/offline/eventlog"
	"github.com/featured-dev/featured/offline/export"
)

// python returns the interpreter of the project's venv (scripts/python-env.sh)
// or $FEATURED_PYTHON. Missing, the test fails under CI and skips elsewhere.
func python(t *testing.T) string {
	t.Helper()
	p := os.Getenv("FEATURED_PYTHON")
	if p == "" {
		p, _ = filepath.Abs(filepath.Join("..", ".cache", "venv", "bin", "python"))
	}
	if err := exec.Command(p, "-c", "import pyarrow, duckdb").Run(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("no pyarrow/duckdb at %s (%v): run scripts/python-env.sh", p, err)
		}
		t.Skipf("no pyarrow/duckdb at %s (%v): run scripts/python-env.sh", p, err)
	}
	return p
}

const readScript = `
import json, sys
import pyarrow.parquet as pq
import duckdb
path = sys.argv[1]
t = pq.read_table(path)
out = {"num_rows": t.num_rows, "schema": [[f.name, str(f.type)] for f in t.schema], "columns": t.to_pydict()}
con = duckdb.connect()
cols = [f.name for f in t.schema]
q = "SELECT count(*), " + ", ".join('count("%s")' % c for c in cols) + " FROM read_parquet(?)"
row = con.execute(q, [path]).fetchone()
out["duckdb_rows"] = row[0]
out["duckdb_non_null"] = dict(zip(cols, row[1:]))
def conv(v):
    if hasattr(v, "isoformat"):
        return v.isoformat()
    return v
for k, vs in out["columns"].items():
    out["columns"][k] = [conv(v) for v in vs]
print(json.dumps(out))
`

// TestExportReadByPyarrowAndDuckDB exports a CSV spine to a Parquet file and
// reads it back with pyarrow and DuckDB: schema and types, row count,
// labels passed through, every feature value equal to the online answer,
// nulls where there was no value, and the same non-null counts in DuckDB.
func TestExportReadByPyarrowAndDuckDB(t *testing.T) {
	py := python(t)
	dir := t.TempDir()
	r := newRig(t, dir, 1_800_000_000_000, eventlog.Options{SegmentBytes: 8192})
	defer r.close()
	samples := r.streamTo(t, 7, 5, 40)
	spine := filepath.Join(dir, "spine.csv")
	f, err := os.Create(spine)
	if err != nil {
		t.Fatal(err)
	}
	w := csv.NewWriter(f)
	w.Write([]string{"user_id", "event_timestamp", "label"})
	for i, s := range samples {
		w.Write([]string{s.user, strconv.FormatInt(s.at, 10), "lbl" + strconv.Itoa(i)})
	}
	w.Flush()
	f.Close()
	out := filepath.Join(dir, "train.parquet")
	v, _ := r.reg.Snapshot().View("spend", 0)
	var refs []string
	for _, f := range v.Features {
		refs = append(refs, "spend:"+f.Name)
	}
	if _, err := r.x.ExportFile(context.Background(), spine, "", export.Request{Features: refs, Statuses: true}, out); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(py, "-c", readScript, out)
	cmd.Stderr = os.Stderr
	b, err := cmd.Output()
	if err != nil {
		t.Fatalf("python: %v", err)
	}
	var got struct {
		NumRows    int              `json:"num_rows"`
		Schema     [][2]string      `json:"schema"`
		Columns    map[string][]any `json:"columns"`
		DuckRows   int              `json:"duckdb_rows"`
		DuckNonNil map[string]int   `json:"duckdb_non_null"`
	}
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatalf("%v: %s", err, b)
	}
	if got.NumRows != len(samples) || got.DuckRows != len(samples) {
		t.Fatalf("rows: pyarrow %d, duckdb %d, want %d", got.NumRows, got.DuckRows, len(samples))
	}
	wantTypes := map[string]string{
		"user_id": "string", "event_timestamp": "timestamp[ms, tz=UTC]", "label": "string",
		"cnt_1h": "int64", "sum_amount_6h": "double", "sum_items_1d": "int64", "last_merchant": "string",
		"last_flag_6h": "bool", "last3_merchant_1d": "list<element: string>", "last2_items_life": "list<element: int64>",
		"distinct_merchant_1d": "int64", "avg_items_6h": "double", "cnt_1h__status": "string",
	}
	types := map[string]string{}
	for _, f := range got.Schema {
		types[f[0]] = f[1]
	}
	for name, want := range wantTypes {
		if types[name] != want {
			t.Errorf("column %s: type %q, want %q", name, types[name], want)
		}
	}
	if len(got.Schema) != 3+2*len(v.Features) {
		t.Errorf("%d columns, want %d: %v", len(got.Schema), 3+2*len(v.Features), got.Schema)
	}
	if got.Columns["label"][5] != "lbl5" {
		t.Errorf("label passed through as %v", got.Columns["label"][5])
	}
	nulls := 0
	for fi, feat := range v.Features {
		col := got.Columns[feat.Name]
		nonNull := 0
		for i, s := range samples {
			var want aggregate.Result
			switch {
			case s.view == v:
				want = s.results[fi]
			default:
				continue
			}
			gotV := jsonValue(t, col[i])
			if col[i] != nil {
				nonNull++
			}
			if want.Status != aggregate.StatusPresent {
				if col[i] != nil {
					t.Errorf("row %d %s: %v, want null (%v)", i, feat.Name, col[i], want.Status)
				}
				nulls++
				continue
			}
			if !aggregatetest.Equal(aggregate.Result{Value: gotV}, aggregate.Result{Value: normalize(want.Value, gotV)}, 0) {
				t.Errorf("row %d %s: pyarrow read %v, online %+v", i, feat.Name, col[i], want.Value)
			}
		}
		total := 0
		for _, x := range col {
			if x != nil {
				total++
			}
		}
		if got.DuckNonNil[feat.Name] != total {
			t.Errorf("%s: duckdb counts %d non-null, pyarrow %d", feat.Name, got.DuckNonNil[feat.Name], total)
		}
		_ = nonNull
	}
	if nulls == 0 {
		t.Fatal("no null feature values: the test does not check nulls")
	}
}

// jsonValue turns a pyarrow value from JSON into a Value (ints and floats
// are told apart by the online kind later, in normalize).
func jsonValue(t *testing.T, x any) aggregate.Value {
	switch x := x.(type) {
	case nil:
		return aggregate.Value{}
	case bool:
		v := aggregate.Value{Kind: aggregate.KindBool}
		if x {
			v.I = 1
		}
		return v
	case float64:
		return aggregate.Value{Kind: aggregate.KindFloat64, F: x}
	case string:
		return aggregate.Value{Kind: aggregate.KindString, S: x}
	case []any:
		v := aggregate.Value{Kind: aggregate.KindList, L: []aggregate.Value{}}
		for _, e := range x {
			v.L = append(v.L, jsonValue(t, e))
		}
		return v
	}
	t.Fatalf("unexpected JSON value %T %v", x, x)
	return aggregate.Value{}
}

// normalize makes want comparable with a value decoded from JSON, where an
// int64 arrives as a float64 (exactly, for the small values of the test).
func normalize(want, got aggregate.Value) aggregate.Value {
	switch want.Kind {
	case aggregate.KindInt64:
		if math.Abs(float64(want.I)) < 1<<53 {
			return aggregate.Value{Kind: aggregate.KindFloat64, F: float64(want.I)}
		}
	case aggregate.KindList:
		out := aggregate.Value{Kind: aggregate.KindList, L: []aggregate.Value{}}
		for i, e := range want.L {
			var g aggregate.Value
			if i < len(got.L) {
				g = got.L[i]
			}
			out.L = append(out.L, normalize(e, g))
		}
		return out
	}
	return want
}
