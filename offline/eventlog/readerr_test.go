package eventlog

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
)

// TestReadErrorIsNotDamage: an I/O error reading a good segment while
// Recover checks it (a frame's head or its body) fails Recover with that
// error; it is not a checksum mismatch, so nothing is quarantined, and the
// next Recover on a working disk reads every event.
func TestReadErrorIsNotDamage(t *testing.T) {
	fx := newDamageFixture(t)
	for seg := uint64(1); seg <= 3; seg++ {
		for read := 1; read <= 4; read++ { // head, body, head, body
			reads := 0
			failing := errorfs.Wrap(vfs.Default, errorfs.InjectorFunc(func(op errorfs.Op) error {
				if op.Kind == errorfs.OpFileRead && op.Path == fx.seg(seg) {
					reads++
					if reads == read {
						return errorfs.ErrInjected
					}
				}
				return nil
			}))
			opts := fx.opts()
			opts.FS = failing
			l, err := Open(fx.dir, opts)
			if err != nil {
				t.Fatal(err)
			}
			err = l.Recover(0, fx.pos)
			l.Close()
			if !errors.Is(err, errorfs.ErrInjected) || errors.Is(err, ErrCorrupt) {
				t.Fatalf("segment %d, read %d failing: recover: %v, want the injected I/O error, not ErrCorrupt", seg, read, err)
			}
			names, err := os.ReadDir(filepath.Dir(fx.seg(seg)))
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range names {
				if strings.HasSuffix(e.Name(), damagedSuffix) || strings.HasSuffix(e.Name(), missingSuffix) {
					t.Fatalf("segment %d, read %d failing: %s quarantined", seg, read, e.Name())
				}
			}
		}
	}
	l := fx.open(t)
	if st := l.Stats(); len(st) != 1 || len(st[0].Damaged) != 0 {
		t.Fatalf("stats after the read errors: %+v", st)
	}
	if n, err := countEvents(l); err != nil || n != 18 {
		t.Fatalf("events after the read errors: %d, %v; want 18", n, err)
	}
}
