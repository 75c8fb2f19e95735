package serving

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/featured-dev/featured/registry"
)

// Options configures a Server. The zero value is usable: EnsureDefaults fills
// in every unset field. Listen addresses are the caller's business: the
// Server only provides an http.Handler and registers gRPC services.
type Options struct {
	// MaxEntities is the most entity rows one lookup may name. The default
	// is 1000.
	MaxEntities int
	// MaxFeatures is the most features one lookup may name (after expanding
	// a feature service). The default is 1000.
	MaxFeatures int
	// MaxBodyBytes is the largest request body accepted, in bytes; larger
	// bodies get 413. The default is 4 MiB.
	MaxBodyBytes int64
	// Now returns the current time; lookups read features as of Now. The
	// default is time.Now. Tests inject a fixed clock.
	Now func() time.Time
	// Logger receives internal errors (500s). The default discards.
	Logger *slog.Logger
	// ReadyCheck, when set, is asked by /readyz after the ready flag: a
	// non-nil error makes /readyz answer 503 with the error's text (for
	// example a Kafka source whose topic does not exist). Lookups are not
	// refused for it: the store still serves what it holds. Nil means
	// always ready.
	ReadyCheck func() error
	// Backfill, when set, builds view version v's online state from the
	// offline log and switches the store to it, returning how many
	// entities it built; featured serve sets it to offline.Backfill over
	// its store and log. POST /v1/apply?backfill=true calls it after the
	// apply, for every ingested view version the apply created, one at a
	// time, on the request's goroutine and with the request's context (so
	// a client that goes away cancels it). It may take as long as reading
	// the log takes. Nil means the server has no offline log: apply refuses
	// ?backfill=true with 400 before applying anything.
	Backfill func(ctx context.Context, v *registry.View) (entities int, err error)
}

// Defaults of Options.
const (
	DefaultMaxEntities  = 1000
	DefaultMaxFeatures  = 1000
	DefaultMaxBodyBytes = 4 << 20
)

// EnsureDefaults sets every zero field to its default.
func (o *Options) EnsureDefaults() {
	if o.MaxEntities == 0 {
		o.MaxEntities = DefaultMaxEntities
	}
	if o.MaxFeatures == 0 {
		o.MaxFeatures = DefaultMaxFeatures
	}
	if o.MaxBodyBytes == 0 {
		o.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
}

// Validate reports the first field that is out of range, by name.
func (o *Options) Validate() error {
	switch {
	case o.MaxEntities < 0:
		return fmt.Errorf("serving: options: max entities: %d is negative", o.MaxEntities)
	case o.MaxFeatures < 0:
		return fmt.Errorf("serving: options: max features: %d is negative", o.MaxFeatures)
	case o.MaxBodyBytes < 0:
		return fmt.Errorf("serving: options: max body bytes: %d is negative", o.MaxBodyBytes)
	case o.MaxBodyBytes > 1<<30:
		return fmt.Errorf("serving: options: max body bytes: %d exceeds 1 GiB", o.MaxBodyBytes)
	}
	return nil
}
