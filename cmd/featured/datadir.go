package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/featured-dev/featured/featurestore"
	"github.com/featured-dev/featured/registry"
)

// A data dir holds three parts that only make sense together: registry.json
// (view ids and layouts), store/ (state keyed by those ids) and offline/
// (the event log, positioned by the store's commits). Serving one without
// another answers NOT_FOUND for entities that exist, or decodes state with
// another view's layout (a re-applied registry hands out the same ids), so
// serve refuses such a dir unless told to start afresh.

const resetFlagHelp = "restore the data dir from a backup, or start afresh with --reset-data-dir (deletes the store and the offline log; events must be ingested again)"

type dataDirPaths struct {
	registry, store, offline string
}

func dataDirLayout(dataDir string) dataDirPaths {
	return dataDirPaths{
		registry: filepath.Join(dataDir, "registry.json"),
		store:    filepath.Join(dataDir, "store"),
		offline:  filepath.Join(dataDir, "offline"),
	}
}

// checkDataDir returns a *featurestore.DamagedError (or another error that
// stops the start) when the data dir is damaged. It opens nothing.
func checkDataDir(p dataDirPaths, partitions int) error {
	hasStore, err := featurestore.HasState(p.store)
	if err != nil {
		return err
	}
	_, err = os.Stat(p.registry)
	hasRegistry := err == nil
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("stat %s: %w", p.registry, err)
	}
	switch {
	case !hasRegistry && hasStore:
		return &featurestore.DamagedError{Path: p.registry, Problem: "missing, but the store " + p.store + " holds state: new definitions would reuse its view ids and serve it with other layouts"}
	case hasRegistry && !hasStore:
		gen, err := registry.FileGeneration(p.registry)
		if err != nil {
			return err
		}
		if gen > 0 {
			return &featurestore.DamagedError{Path: p.store, Problem: fmt.Sprintf("missing, but %s holds definitions (generation %d): every lookup would answer NOT_FOUND", p.registry, gen)}
		}
	}
	return featurestore.CheckDir(p.store, partitions)
}

// prepareDataDir checks the data dir and, when it is damaged and reset is
// set, deletes the store and the offline log (keeping registry.json when
// there is one) so that serve starts afresh, logging what it deleted.
// Without reset, a damaged dir is an error naming the file and the way out.
func prepareDataDir(p dataDirPaths, partitions int, reset bool, log *slog.Logger) error {
	err := checkDataDir(p, partitions)
	if err == nil {
		if reset {
			log.Warn("--reset-data-dir: the data dir is intact; nothing deleted (remove the flag)")
		}
		return nil
	}
	if !errors.Is(err, featurestore.ErrDamaged) {
		return err
	}
	if !reset {
		return fmt.Errorf("%w; %s", err, resetFlagHelp)
	}
	log.Error("--reset-data-dir: DELETING the store and the offline log of a damaged data dir; featured starts with no state", "damage", err.Error(), "store", p.store, "offline", p.offline)
	for _, dir := range []string{p.store, p.offline} {
		if err := os.RemoveAll(dir); err != nil {
			return fmt.Errorf("--reset-data-dir: %w", err)
		}
	}
	return nil
}
