package main

import (
	"flag"
	"io"
	"strings"
	"testing"
	"time"
)

// TestFlagsFromEnvironment: a flag not given on the command line is read
// from FEATURED_<NAME>; a flag given wins; a bad value names the variable.
func TestFlagsFromEnvironment(t *testing.T) {
	t.Setenv("FEATURED_DATA_DIR", "/from/env")
	t.Setenv("FEATURED_HTTP_ADDR", "127.0.0.1:1")
	t.Setenv("FEATURED_COMMIT_INTERVAL", "25ms")
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	c := serveFlags(fs)
	if err := parseFlags(fs, []string{"--http-addr", "127.0.0.1:2"}); err != nil {
		t.Fatal(err)
	}
	if c.dataDir != "/from/env" || c.httpAddr != "127.0.0.1:2" || c.commitInterval != 25*time.Millisecond {
		t.Fatalf("got data dir %q, http %q, commit interval %s", c.dataDir, c.httpAddr, c.commitInterval)
	}

	t.Setenv("FEATURED_SHARDS", "many")
	fs = flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	serveFlags(fs)
	if err := parseFlags(fs, nil); err == nil || !strings.Contains(err.Error(), "FEATURED_SHARDS") {
		t.Fatalf("bad FEATURED_SHARDS: %v, want an error naming it", err)
	}
}
