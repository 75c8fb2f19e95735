package eventlog

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// damageFixture is a log of shard 0 with three WAL segments of two frames
// of three rows each (LSNs 0..17): 1 and 2 sealed but not converted (the
// converter could not write), 3 the committed one.
type damageFixture struct {
	dir   string
	pos   []byte // the committed position
	clock atomic.Int64
}

func (fx *damageFixture) opts() Options {
	return Options{
		Now:        func() time.Time { return time.UnixMilli(fx.clock.Load()) },
		SegmentAge: time.Minute,
		Retention:  -1,
		Logger:     slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
}

func newDamageFixture(t *testing.T) *damageFixture {
	t.Helper()
	fx := &damageFixture{dir: t.TempDir()}
	fx.clock.Store(1_800_000_000_000)
	// A file where the source's Parquet directory would go keeps the
	// converter from converting (and so deleting) the sealed segments.
	block := filepath.Join(fx.dir, "tx")
	if err := os.WriteFile(block, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	l, err := Open(fx.dir, fx.opts())
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Recover(0, nil); err != nil {
		t.Fatal(err)
	}
	ev := int64(0)
	for seg := 0; seg < 3; seg++ {
		for c := 0; c < 2; c++ {
			appendN(l, 0, 3, ev)
			ev += 3
			fx.pos = commit(t, l, 0, fx.clock.Load())
			l.Committed(0, fx.clock.Load(), nil)
		}
		fx.clock.Add(int64(2 * time.Minute / time.Millisecond)) // the next commit seals the segment
	}
	l.Close() // reports the blocked conversion
	if err := os.Remove(block); err != nil {
		t.Fatal(err)
	}
	for seg := uint64(1); seg <= 3; seg++ {
		if _, err := os.Stat(fx.seg(seg)); err != nil {
			t.Fatalf("fixture: segment %d: %v", seg, err)
		}
	}
	return fx
}

func (fx *damageFixture) seg(n uint64) string {
	return filepath.Join(fx.dir, walDir, "p-0000", segName(n))
}

func (fx *damageFixture) open(t *testing.T) *Log {
	t.Helper()
	l, err := Open(fx.dir, fx.opts())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	if err := l.Recover(0, fx.pos); err != nil {
		t.Fatalf("recover: %v", err)
	}
	return l
}

// countEvents returns how many events the log reads back, or the error.
func countEvents(l *Log) (int, error) {
	n := 0
	err := l.Events(context.Background(), "", func(Event) error { n++; return nil })
	return n, err
}

func flipByte(t *testing.T, path string, at int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := []byte{0}
	if _, err := f.ReadAt(b, at); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0xff
	if _, err := f.WriteAt(b, at); err != nil {
		t.Fatal(err)
	}
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return st.Size()
}

// TestDamagedWALIsQuarantined: damage to committed WAL bytes is not read
// as a torn tail (which made scans and the converter drop the rest of the
// segment, or a whole missing segment, without a word): the segment is set
// aside, counted in Stats, and every scan of the shard fails naming it
// until its loss is accepted; appends go on meanwhile, and the quarantine
// outlives a restart.
func TestDamagedWALIsQuarantined(t *testing.T) {
	cases := []struct {
		name   string
		damage func(t *testing.T, fx *damageFixture)
		file   string // the quarantined file, under the shard's directory
		left   int    // events readable once the loss is accepted
	}{
		{"byte flipped in a sealed segment", func(t *testing.T, fx *damageFixture) {
			flipByte(t, fx.seg(1), fileSize(t, fx.seg(1))-3) // in its second frame
		}, segName(1) + damagedSuffix, 12},
		{"sealed segment cut short", func(t *testing.T, fx *damageFixture) {
			if err := os.Truncate(fx.seg(2), fileSize(t, fx.seg(2))-5); err != nil {
				t.Fatal(err)
			}
		}, segName(2) + damagedSuffix, 12},
		{"garbage after a sealed segment's frames", func(t *testing.T, fx *damageFixture) {
			f, err := os.OpenFile(fx.seg(1), os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				t.Fatal(err)
			}
			f.Write([]byte{9, 0, 0, 0, 1, 2, 3, 4})
			f.Close()
		}, segName(1) + damagedSuffix, 12},
		{"sealed segment deleted", func(t *testing.T, fx *damageFixture) {
			if err := os.Remove(fx.seg(2)); err != nil {
				t.Fatal(err)
			}
		}, segName(2) + missingSuffix, 12},
		{"byte flipped in the committed segment", func(t *testing.T, fx *damageFixture) {
			flipByte(t, fx.seg(3), 10) // in its first frame
		}, segName(3) + damagedSuffix, 12},
		{"committed segment deleted", func(t *testing.T, fx *damageFixture) {
			if err := os.Remove(fx.seg(3)); err != nil {
				t.Fatal(err)
			}
		}, segName(3) + missingSuffix, 12},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fx := newDamageFixture(t)
			tc.damage(t, fx)
			l := fx.open(t)
			want := filepath.Join(fx.dir, walDir, "p-0000", tc.file)
			st := l.Stats()
			if len(st) != 1 || len(st[0].Damaged) != 1 || st[0].Damaged[0] != want {
				t.Fatalf("stats %+v, want damaged [%s]", st, want)
			}
			n, err := countEvents(l)
			if !errors.Is(err, ErrDamaged) || !strings.Contains(err.Error(), want) {
				t.Fatalf("events after the damage: %d, err %v; want ErrDamaged naming %s", n, err, want)
			}
			if err := l.ScanShard(context.Background(), 0, "tx", func(*Row) error { return nil }); !errors.Is(err, ErrDamaged) {
				t.Fatalf("backfill scan: err %v, want ErrDamaged", err)
			}

			// Appends go on, and a restart keeps the quarantine.
			appendN(l, 0, 2, 100)
			fx.pos = commit(t, l, 0, fx.clock.Load())
			l.Committed(0, fx.clock.Load(), nil)
			l.Close()
			l = fx.open(t)
			if _, err := countEvents(l); !errors.Is(err, ErrDamaged) {
				t.Fatalf("after a restart: err %v, want ErrDamaged", err)
			}
			l.Close()

			// The way out the error names: accept the loss.
			if err := os.Rename(want, strings.TrimSuffix(strings.TrimSuffix(want, damagedSuffix), missingSuffix)+lostSuffix); err != nil {
				t.Fatal(err)
			}
			l = fx.open(t)
			if st := l.Stats(); len(st[0].Damaged) != 0 {
				t.Fatalf("after accepting the loss: stats %+v", st)
			}
			if n, err := countEvents(l); err != nil || n != tc.left+2 {
				t.Fatalf("after accepting the loss: %d events, err %v; want %d", n, err, tc.left+2)
			}
		})
	}
}

// TestRestoredSegmentReadsAgain: a quarantined segment restored under its
// name is checked again on open and read as if nothing had happened.
func TestRestoredSegmentReadsAgain(t *testing.T) {
	fx := newDamageFixture(t)
	good, err := os.ReadFile(fx.seg(2))
	if err != nil {
		t.Fatal(err)
	}
	flipByte(t, fx.seg(2), 12)
	l := fx.open(t)
	if _, err := countEvents(l); !errors.Is(err, ErrDamaged) {
		t.Fatalf("damaged: err %v, want ErrDamaged", err)
	}
	l.Close()
	if err := os.WriteFile(fx.seg(2), good, 0o644); err != nil { // from a backup
		t.Fatal(err)
	}
	if err := os.Remove(fx.seg(2) + damagedSuffix); err != nil {
		t.Fatal(err)
	}
	l = fx.open(t)
	if n, err := countEvents(l); err != nil || n != 18 {
		t.Fatalf("restored: %d events, err %v; want 18", n, err)
	}
}

// TestCrashTailsAreCountedNotDamage: bytes past the committed position (a
// crash between the WAL write and the store's commit, a torn frame) are
// cut and counted; a committed segment shorter than the committed position
// (a power loss before unsynced commits reached the disk) keeps its whole
// frames and counts the rest as lost. Neither quarantines anything.
func TestCrashTailsAreCountedNotDamage(t *testing.T) {
	t.Run("torn tail past the committed position", func(t *testing.T) {
		fx := newDamageFixture(t)
		f, err := os.OpenFile(fx.seg(3), os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			t.Fatal(err)
		}
		f.Write([]byte{200, 0, 0, 0, 1, 2, 3})
		f.Close()
		l := fx.open(t)
		st := l.Stats()
		if st[0].DroppedBytes != 7 || st[0].LostBytes != 0 || len(st[0].Damaged) != 0 {
			t.Fatalf("stats %+v, want 7 dropped bytes and nothing else", st)
		}
		if n, err := countEvents(l); err != nil || n != 18 {
			t.Fatalf("%d events, err %v; want 18", n, err)
		}
	})
	t.Run("committed segment short after a power loss", func(t *testing.T) {
		fx := newDamageFixture(t)
		size := fileSize(t, fx.seg(3))
		if err := os.Truncate(fx.seg(3), size-4); err != nil {
			t.Fatal(err)
		}
		l := fx.open(t)
		st := l.Stats()
		if st[0].LostBytes != size/2 || len(st[0].Damaged) != 0 {
			t.Fatalf("stats %+v, want %d lost bytes (the second frame) and no damage", st, size/2)
		}
		if n, err := countEvents(l); err != nil || n != 15 {
			t.Fatalf("%d events, err %v; want 15", n, err)
		}
	})
}
