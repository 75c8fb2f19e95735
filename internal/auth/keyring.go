package auth

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// Options configure a Keyring. The zero value is usable.
type Options struct {
	// ReloadEvery is how often, at most, Identify checks whether the file
	// changed (its modification time and size). The default is 1s.
	ReloadEvery time.Duration
	// Now is the clock of reloads and rate limits. The default is time.Now.
	Now func() time.Time
	// Logger receives reloads and failed reloads. The default discards.
	Logger *slog.Logger
}

// EnsureDefaults fills in unset fields.
func (o *Options) EnsureDefaults() {
	if o.ReloadEvery == 0 {
		o.ReloadEvery = time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
}

// Keyring is the token file in force. Identify may be called from any
// goroutine at any rate.
type Keyring struct {
	path string
	opts Options
	cur  atomic.Pointer[tokenSet]
	// nextCheck is when (unix nanoseconds) Identify next stats the file.
	nextCheck atomic.Int64
	reloadMu  sync.Mutex // one reload at a time
}

type tokenSet struct {
	modTime time.Time
	size    int64
	// hashed are the bearer-token entries, compared one by one in
	// constant time; bySubject the client-certificate entries.
	hashed    []hashed
	bySubject map[string]*Identity
	byName    map[string]*Identity
}

type hashed struct {
	digest [sha256.Size]byte
	id     *Identity
}

// Open loads the token file at path.
func Open(path string, opts Options) (*Keyring, error) {
	opts.EnsureDefaults()
	k := &Keyring{path: path, opts: opts}
	set, err := k.load(nil)
	if err != nil {
		return nil, err
	}
	k.cur.Store(set)
	k.nextCheck.Store(opts.Now().Add(opts.ReloadEvery).UnixNano())
	return k, nil
}

// Path is the token file's path.
func (k *Keyring) Path() string { return k.path }

// Len returns how many entries are in force.
func (k *Keyring) Len() int { return len(k.cur.Load().byName) }

func (k *Keyring) load(prev *tokenSet) (*tokenSet, error) {
	f, err := os.Open(k.path)
	if err != nil {
		return nil, fmt.Errorf("auth: open token file: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("auth: stat token file: %w", err)
	}
	data, err := io.ReadAll(f)
	if err != nil {
		return nil, fmt.Errorf("auth: read token file: %w", err)
	}
	// 0644 would let any local user read the digests; weak tokens could be
	// guessed from them. Warn rather than refuse: the digests are not
	// the tokens.
	if fi.Mode().Perm()&0o044 != 0 {
		k.opts.Logger.Warn("auth: token file is readable by group or others; chmod 600", "file", k.path)
	}
	file, err := ParseFile(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", k.path, err)
	}
	set := &tokenSet{modTime: fi.ModTime(), size: fi.Size(), bySubject: map[string]*Identity{}, byName: map[string]*Identity{}}
	for _, e := range file.Tokens {
		scopes, _ := ParseScopes(e.Scopes) // validated by ParseFile
		id := &Identity{name: e.Name, scopes: scopes, views: e.Views, services: e.Services}
		cfg := limitConfig{rate: e.Rate, burst: e.Burst, concurrency: e.Concurrency}
		// A reload keeps a caller's limiter when its limits did not change,
		// so rewriting the file (to add a token) does not refill every
		// bucket or forget requests in flight.
		if prev != nil {
			if old := prev.byName[e.Name]; old != nil && old.lim.cfg == cfg.normal() {
				id.lim = old.lim
			}
		}
		if id.lim == nil {
			id.lim = newLimits(cfg, k.opts.Now)
		}
		set.byName[e.Name] = id
		if e.Subject != "" {
			set.bySubject[e.Subject] = id
			continue
		}
		var h hashed
		hex.Decode(h.digest[:], []byte(e.SHA256)) // validated by ParseFile
		h.id = id
		set.hashed = append(set.hashed, h)
	}
	return set, nil
}

// maybeReload re-reads the file when its modification time or size
// changed, at most once per ReloadEvery.
func (k *Keyring) maybeReload() {
	now := k.opts.Now()
	next := k.nextCheck.Load()
	if now.UnixNano() < next || !k.nextCheck.CompareAndSwap(next, now.Add(k.opts.ReloadEvery).UnixNano()) {
		return
	}
	k.Reload()
}

// Reload re-reads the token file now if it changed. A file that fails to
// load leaves the tokens in force; the error is logged and returned.
func (k *Keyring) Reload() error {
	k.reloadMu.Lock()
	defer k.reloadMu.Unlock()
	cur := k.cur.Load()
	fi, err := os.Stat(k.path)
	if err == nil && fi.ModTime().Equal(cur.modTime) && fi.Size() == cur.size {
		return nil
	}
	if err == nil {
		var set *tokenSet
		if set, err = k.load(cur); err == nil {
			k.cur.Store(set)
			k.opts.Logger.Info("auth: token file reloaded", "file", k.path, "entries", len(set.byName))
			return nil
		}
	}
	k.opts.Logger.Error("auth: token file reload failed; the previous tokens stay in force", "file", k.path, "err", err)
	return err
}

// Identify returns the caller of a request: the entry whose digest is the
// bearer token's, or else the entry of a verified client certificate's
// subject. token is the bearer token without "Bearer "; subject is "" when
// there is no verified client certificate. Errors match
// ErrUnauthenticated.
func (k *Keyring) Identify(token, subject string) (*Identity, error) {
	k.maybeReload()
	set := k.cur.Load()
	if token != "" {
		digest := sha256.Sum256([]byte(token))
		// Every entry is compared, in constant time, so that the time taken
		// says nothing of how close a guess came.
		var found *Identity
		for i := range set.hashed {
			if subtle.ConstantTimeCompare(digest[:], set.hashed[i].digest[:]) == 1 {
				found = set.hashed[i].id
			}
		}
		if found == nil {
			return nil, fmt.Errorf("%w: unknown token", ErrUnauthenticated)
		}
		return found, nil
	}
	if subject != "" {
		if id := set.bySubject[subject]; id != nil {
			return id, nil
		}
		return nil, fmt.Errorf("%w: client certificate %q is not in the token file and no bearer token was sent", ErrUnauthenticated, subject)
	}
	return nil, fmt.Errorf("%w: no token: send Authorization: Bearer <token>", ErrUnauthenticated)
}

// Acquire takes one request of the identity's rate and concurrency
// limits. The caller calls release when the request ends. Errors match
// ErrRateLimited and say which limit.
func (id *Identity) Acquire() (release func(), retryAfter time.Duration, err error) {
	return id.lim.acquire(id.name)
}

type ctxKey struct{}

// NewContext returns ctx carrying id.
func NewContext(ctx context.Context, id *Identity) context.Context {
	return context.WithValue(ctx, ctxKey{}, id)
}

// FromContext returns the identity of ctx, nil when the request was not
// authenticated (auth is off).
func FromContext(ctx context.Context) *Identity {
	id, _ := ctx.Value(ctxKey{}).(*Identity)
	return id
}
