package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/featured-dev/featured/registry"
)

// TestApplyBackfillEndToEnd, on the real binary: apply spend v1, push,
// then `featured apply --backfill` a new version of spend over the same
// source while pushes go on, and push more after. v2 then answers exactly
// the fold of every event, the ones from before its apply included (no gap)
// and the ones around and after the switch once (no double count), as v1
// does, which saw them all live. A bad ?backfill= value is a 400 that
// changes nothing.
func TestApplyBackfillEndToEnd(t *testing.T) {
	dir := t.TempDir()
	defs := defsWith("push", "")
	defsFile := filepath.Join(dir, "defs.yaml")
	if err := os.WriteFile(defsFile, []byte(defs), 0o644); err != nil {
		t.Fatal(err)
	}
	v2 := strings.Replace(defs, "{name: cnt_1h, aggregation: count, window: 1h}", "{name: cnt_1h, aggregation: count, window: 2h}", 1)
	v2File := filepath.Join(dir, "v2.yaml")
	if err := os.WriteFile(v2File, []byte(v2), 0o644); err != nil {
		t.Fatal(err)
	}
	s := startServer(t, filepath.Join(dir, "data"))
	if out, err := s.cli(t, "apply", "-f", defsFile); err != nil {
		t.Fatalf("apply: %v\n%s", err, out)
	}
	const events = 90
	streams := streamsFor(6, 29, events, time.Now())
	push := func(from, to int) error {
		for i := from; i < to; i += 5 {
			var batch []map[string]any
			for j := i; j < min(i+5, to); j++ {
				for u, evs := range streams {
					batch = append(batch, eventObject(u, evs[j]))
				}
			}
			b, _ := json.Marshal(map[string]any{"source": "tx", "events": batch})
			resp, err := http.Post(s.url+"/v1/push", "application/json", bytes.NewReader(b))
			if err != nil {
				return err
			}
			var body bytes.Buffer
			body.ReadFrom(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || !strings.Contains(body.String(), fmt.Sprintf(`"accepted":%d`, len(batch))) {
				return fmt.Errorf("push: %d %s", resp.StatusCode, body.String())
			}
		}
		return nil
	}
	if err := push(0, 40); err != nil {
		t.Fatal(err)
	}

	// A bad value is refused before anything is applied.
	before := s.registryJSON(t)
	raw, _ := os.ReadFile(v2File)
	resp, err := http.Post(s.url+"/v1/apply?backfill=maybe", "application/yaml", bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	var body bytes.Buffer
	body.ReadFrom(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body.String(), `"field":"backfill"`) || !strings.Contains(body.String(), "maybe") {
		t.Fatalf("apply ?backfill=maybe: %d %s, want 400 naming backfill", resp.StatusCode, body.String())
	}
	if after := s.registryJSON(t); after != before {
		t.Fatalf("a refused apply changed the registry:\nbefore %s\nafter  %s", before, after)
	}

	// Pushes go on while the apply and its backfill run.
	var wg sync.WaitGroup
	var pushErr error
	wg.Go(func() { pushErr = push(40, 60) })
	out, err := s.cli(t, "apply", "-f", v2File, "--backfill")
	wg.Wait()
	if pushErr != nil {
		t.Fatal(pushErr)
	}
	if err != nil || !strings.Contains(out, "spend v1 -> v2") || !strings.Contains(out, "backfilled view spend v2: 6 entities") {
		t.Fatalf("apply --backfill: %v\n%s", err, out)
	}
	t.Log(strings.TrimSpace(out))
	if err := push(60, events); err != nil {
		t.Fatal(err)
	}

	s.checkAgainstReference(t, compiledVersion(t, "spend", defs, v2), streams)
	s.checkAgainstReference(t, compiledVersion(t, "spend", defs), streams)
}

// compiledVersion applies each definitions document in turn to a registry
// in a scratch dir and returns the latest version of view, as the server
// that applied the same documents has it.
func compiledVersion(t *testing.T, view string, docs ...string) *registry.View {
	t.Helper()
	reg, err := registry.Open(filepath.Join(t.TempDir(), "registry.json"))
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	for _, doc := range docs {
		d, err := registry.ParseYAML([]byte(doc))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := reg.Apply(d); err != nil {
			t.Fatal(err)
		}
	}
	v, err := reg.Snapshot().View(view, 0)
	if err != nil {
		t.Fatal(err)
	}
	return v
}
