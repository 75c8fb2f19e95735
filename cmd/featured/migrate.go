package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"

	"github.com/featured-dev/featured/aggregate"
	"github.com/featured-dev/featured/featurestore"
	"github.com/featured-dev/featured/internal/keyenc"
	"github.com/featured-dev/featured/offline/eventlog"
	"github.com/featured-dev/featured/registry"
)

// migrateStoreCmd rewrites a stopped server's store from the layout before
// partitions (store/SHARDS) into --partitions partitions
// (featurestore.MigrateStore), placing each state by its view's entity
// (type and kafka_key) in the registry of the data dir.
func migrateStoreCmd(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("migrate-store", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dataDir := fs.String("data-dir", "", "the stopped server's data dir")
	partitions := fs.Int("partitions", 16, "partitions of the new store: every Kafka source topic's partition count")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *dataDir == "" || fs.NArg() != 0 {
		return errors.New("migrate-store: give --data-dir DIR (and --partitions P)")
	}
	reg, err := registry.Open(filepath.Join(*dataDir, "registry.json"))
	if err != nil {
		return fmt.Errorf("migrate-store: open the registry (is a server running on %s?): %w", *dataDir, err)
	}
	defer reg.Close()
	views := map[featurestore.ViewKey]*registry.View{}
	for _, v := range reg.Snapshot().Views() {
		views[featurestore.ViewKey{ID: v.ID, Version: uint32(v.Version)}] = v
	}
	place := func(vk featurestore.ViewKey, entity []byte, n int) (int, bool) {
		v := views[vk]
		if v == nil {
			return 0, false
		}
		p, err := keyenc.PartitionOfKey(entity, v.KeyKinds(), v.Entities[0].KafkaKey, n)
		return p, err == nil
	}
	snap := reg.Snapshot()
	placeSource := func(source string, entity []byte, n int) (int, bool) {
		kinds := snap.SourceKeyKinds(source)
		if len(kinds) == 0 || kinds[0] == aggregate.KindNull {
			return 0, false
		}
		p, err := keyenc.PartitionOfKey(entity, kinds, snap.SourceKafkaKey(source), n)
		return p, err == nil
	}
	store := filepath.Join(*dataDir, "store")
	var wals []int
	rename := func() error {
		w, err := eventlog.RenameLegacyWALs(filepath.Join(*dataDir, "offline"))
		wals = append(wals, w...)
		return err
	}
	st, err := featurestore.MigrateStore(store, featurestore.MigrateOptions{Partitions: *partitions, Place: place, PlaceSource: placeSource, BeforeSwitch: rename})
	if err != nil {
		return fmt.Errorf("migrate-store: %w", err)
	}
	fmt.Fprintf(stdout, "migrated %s from %d shards to %d partitions: %d states, %d quarantined, %d batch markers, %d offsets, %d dead letters, %d unfinished atomic pushes (applied when it opens); dropped %d states of deleted view versions\n",
		store, st.Shards, st.Partitions, st.States, st.Quarantined, st.Markers, st.Offsets, st.DeadLetters, st.Journaled, st.Dropped)
	if len(wals) > 0 {
		fmt.Fprintf(stdout, "renamed the offline log's WALs of shards %v to partitions of the same numbers\n", wals)
		fmt.Fprintf(stdout, "note: a backfill rebuilds each partition from its own log only; events logged before the migration by another shard are not folded into it until they leave the log's retention (exports and verify-skew read every log and are not affected)\n")
	}
	fmt.Fprintf(stdout, "start it with featured serve --data-dir %s --partitions %d; the old store is in %s: delete it once the new server runs\n",
		*dataDir, st.Partitions, st.Old)
	return nil
}
