package main

import (
	"bytes"
	"context"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gocloud.dev/blob"
	"google.golang.org/protobuf/proto"

	feastcore "github.com/featured-dev/featured/api/feast/core"
	feasttypes "github.com/featured-dev/featured/api/feast/types"
)

// TestImportFeastFrom reads one registry from each kind of place `featured
// import feast` takes: a path, file:// and s3:// (the test object store,
// scripts/objectstore.sh), and prints the same document from each.
func TestImportFeastFrom(t *testing.T) {
	r := &feastcore.Registry{Entities: []*feastcore.Entity{{Spec: &feastcore.EntitySpecV2{
		Name: "driver", JoinKey: "driver_id", ValueType: feasttypes.ValueType_INT64, Project: "rides"}}}}
	reg, err := proto.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "registry.db")
	if err := os.WriteFile(path, reg, 0o644); err != nil {
		t.Fatal(err)
	}
	importFrom := func(t *testing.T, src string) string {
		t.Helper()
		var out, errb bytes.Buffer
		if err := run(context.Background(), []string{"import", "feast", src}, &out, &errb); err != nil {
			t.Fatalf("import feast %s: %v\n%s", src, err, errb.String())
		}
		if !strings.Contains(out.String(), "  - {name: driver, join_key: driver_id, type: int64}\n") {
			t.Errorf("import feast %s:\n%s", src, out.String())
		}
		return out.String()
	}
	want := importFrom(t, path)
	if got := importFrom(t, "file://"+path); got != want {
		t.Errorf("file:// gives\n%s\nthe path\n%s", got, want)
	}
	t.Run("s3", func(t *testing.T) {
		dest := s3Dest(t, "featured-test")
		if dest == "" {
			t.Skip("FEATURED_S3_ENDPOINT not set (scripts/objectstore.sh)")
		}
		u, err := url.Parse(dest)
		if err != nil {
			t.Fatal(err)
		}
		key := strings.TrimPrefix(u.Path, "/") + "/data/registry.db"
		u.Path = ""
		ctx := context.Background()
		b, err := blob.OpenBucket(ctx, u.String())
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		if err := b.WriteAll(ctx, key, reg, nil); err != nil {
			t.Fatal(err)
		}
		u.Path = "/" + key
		if got := importFrom(t, u.String()); got != want {
			t.Errorf("s3:// gives\n%s\nthe path\n%s", got, want)
		}
		u.Path = "/" + key + ".missing"
		var out, errb bytes.Buffer
		if err := run(ctx, []string{"import", "feast", u.String()}, &out, &errb); err == nil {
			t.Errorf("a missing object: no error")
		}
	})
	for _, args := range [][]string{
		{"import", "feast", "gs://bucket/registry.db"}, // no GCS driver in the binary
		{"import", "feast", filepath.Join(t.TempDir(), "missing.db")},
		{"import", "feast"},
		{"import", "feast", path, path},
		{"import", "feast", path, "--project", "nope"},
		{"import", "registry.db"},
	} {
		var out, errb bytes.Buffer
		if err := run(context.Background(), args, &out, &errb); err == nil {
			t.Errorf("%v: no error", args)
		}
	}
}
