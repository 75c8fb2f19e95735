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

	t.Setenv("FEATURED_PARTITIONS", "many")
	fs = flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	serveFlags(fs)
	if err := parseFlags(fs, nil); err == nil || !strings.Contains(err.Error(), "FEATURED_PARTITIONS") {
		t.Fatalf("bad FEATURED_PARTITIONS: %v, want an error naming it", err)
	}
}

// TestShardsFlagRemoved: --shards and FEATURED_SHARDS, which configured
// the layout before partitions, fail naming --partitions rather than
// being ignored (a deployment still setting them would otherwise start a
// store of the default partition count).
func TestShardsFlagRemoved(t *testing.T) {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	serveFlags(fs)
	if err := parseFlags(fs, []string{"--shards", "4"}); err == nil || !strings.Contains(err.Error(), "--partitions") {
		t.Fatalf("--shards 4: %v, want an error naming --partitions", err)
	}
	t.Setenv("FEATURED_SHARDS", "4")
	fs = flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	c := serveFlags(fs)
	if err := parseFlags(fs, nil); err == nil || !strings.Contains(err.Error(), "FEATURED_SHARDS") || !strings.Contains(err.Error(), "--partitions") {
		t.Fatalf("FEATURED_SHARDS=4: %v, want an error naming it and --partitions", err)
	}
	if c.partitions != 16 {
		t.Fatalf("default partitions %d, want 16", c.partitions)
	}
}
