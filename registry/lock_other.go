//go:build !unix

package registry

import "os"

// lockFile opens path without locking: advisory locks are unix-only here.
func lockFile(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
}

func unlockFile(f *os.File) error { return f.Close() }
