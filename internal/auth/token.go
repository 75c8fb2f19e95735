package auth

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Sentinel errors. serving maps them to 401 / Unauthenticated, 403 /
// PermissionDenied and 429 / ResourceExhausted.
var (
	ErrUnauthenticated  = errors.New("auth: unauthenticated")
	ErrPermissionDenied = errors.New("auth: permission denied")
	ErrRateLimited      = errors.New("auth: rate limited")
	// ErrInvalidFile is a token file that does not parse or validate; the
	// error names the entry and field.
	ErrInvalidFile = errors.New("auth: invalid token file")
)

// Scope is a set of permissions a token holds. A token holds exactly the
// scopes it lists: admin does not imply read or write.
type Scope uint8

// The scopes. ScopeNone is what an open route (probes) needs.
const (
	ScopeNone  Scope = 0
	ScopeRead  Scope = 1 << iota // lookups, registry reads
	ScopeWrite                   // pushes
	ScopeAdmin                   // registry changes, offline jobs, status, pprof
)

var scopeNames = map[string]Scope{"read": ScopeRead, "write": ScopeWrite, "admin": ScopeAdmin}

func (s Scope) String() string {
	var names []string
	for _, n := range []string{"read", "write", "admin"} {
		if s&scopeNames[n] != 0 {
			names = append(names, n)
		}
	}
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ",")
}

// ParseScopes parses scope names ("read", "write", "admin").
func ParseScopes(names []string) (Scope, error) {
	var s Scope
	for _, n := range names {
		sc, ok := scopeNames[n]
		if !ok {
			return 0, fmt.Errorf("unknown scope %q: want read, write or admin", n)
		}
		s |= sc
	}
	return s, nil
}

// Entry is one caller of the token file.
type Entry struct {
	// Name names the caller in errors, audit lines and the registry
	// history. Unique in the file.
	Name string `yaml:"name"`
	// SHA256 is the hex SHA-256 digest of the bearer token. The token
	// itself is never stored.
	SHA256 string `yaml:"sha256,omitempty"`
	// Subject is a verified client certificate's subject, as
	// pkix.Name.String prints it ("CN=svc"): the caller is identified by
	// its certificate instead of a token. An entry has SHA256 or Subject,
	// not both.
	Subject string   `yaml:"subject,omitempty"`
	Scopes  []string `yaml:"scopes"`
	// Views and Services limit read: a lookup must name only features of
	// the listed views, or be of a listed feature service. Both empty:
	// every view.
	Views    []string `yaml:"views,omitempty"`
	Services []string `yaml:"services,omitempty"`
	// Rate is requests per second (0: unlimited), Burst the bucket's size
	// (default: Rate rounded up, at least 1), Concurrency the requests in
	// flight at once (0: unlimited).
	Rate        float64 `yaml:"rate,omitempty"`
	Burst       int     `yaml:"burst,omitempty"`
	Concurrency int     `yaml:"concurrency,omitempty"`
}

// File is the token file's document.
type File struct {
	Tokens []Entry `yaml:"tokens"`
}

// ParseFile parses and validates a token file. Errors match ErrInvalidFile
// and name the entry: tokens[1].sha256: want 64 hex digits.
func ParseFile(data []byte) (*File, error) {
	var f File
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidFile, err)
	}
	names := map[string]bool{}
	subjects := map[string]bool{}
	for i, e := range f.Tokens {
		bad := func(field, msg string, args ...any) error {
			return fmt.Errorf("%w: tokens[%d].%s: %s", ErrInvalidFile, i, field, fmt.Sprintf(msg, args...))
		}
		switch {
		case e.Name == "":
			return nil, bad("name", "missing")
		case names[e.Name]:
			return nil, bad("name", "%q is taken by an earlier entry", e.Name)
		case (e.SHA256 == "") == (e.Subject == ""):
			return nil, bad("sha256", "give sha256 (a bearer token's digest) or subject (a client certificate's), exactly one")
		case e.Subject != "" && subjects[e.Subject]:
			return nil, bad("subject", "%q is taken by an earlier entry", e.Subject)
		case len(e.Scopes) == 0:
			return nil, bad("scopes", "missing: list read, write or admin")
		case e.Rate < 0 || math.IsNaN(e.Rate) || math.IsInf(e.Rate, 0):
			return nil, bad("rate", "%v is not a rate", e.Rate)
		case e.Burst < 0:
			return nil, bad("burst", "%d is negative", e.Burst)
		case e.Concurrency < 0:
			return nil, bad("concurrency", "%d is negative", e.Concurrency)
		}
		if e.SHA256 != "" {
			if b, err := hex.DecodeString(e.SHA256); err != nil || len(b) != sha256.Size {
				return nil, bad("sha256", "want 64 hex digits (sha256sum of the token)")
			}
		}
		if _, err := ParseScopes(e.Scopes); err != nil {
			return nil, bad("scopes", "%v", err)
		}
		names[e.Name] = true
		if e.Subject != "" {
			subjects[e.Subject] = true
		}
	}
	return &f, nil
}

// NewToken returns a random bearer token (32 bytes from crypto/rand, hex)
// and its digest for the token file.
func NewToken() (token, digest string, err error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", "", fmt.Errorf("auth: new token: %w", err)
	}
	token = "ft_" + hex.EncodeToString(b[:])
	return token, Digest(token), nil
}

// Digest is the hex SHA-256 of a token, as the token file stores it.
func Digest(token string) string {
	h := sha256.Sum256([]byte(token))
	return hex.EncodeToString(h[:])
}

// EntryYAML renders e as one list item of the token file.
func EntryYAML(e Entry) string {
	out, _ := yaml.Marshal([]Entry{e})
	return string(out)
}

// Identity is a caller the Keyring recognized.
type Identity struct {
	name     string
	scopes   Scope
	views    []string
	services []string
	lim      *limits
}

// Name is the entry's name.
func (id *Identity) Name() string { return id.name }

// Has reports whether the identity holds every scope in s.
func (id *Identity) Has(s Scope) bool { return id.scopes&s == s }

// Require returns nil if the identity holds s, else an error matching
// ErrPermissionDenied that names the scope needed.
func (id *Identity) Require(s Scope, what string) error {
	if id.Has(s) {
		return nil
	}
	return fmt.Errorf("%w: token %q lacks scope %s, which %s needs (it has %s)", ErrPermissionDenied, id.name, s, what, id.scopes)
}

// ReadsAll reports whether read is not limited to views or services.
func (id *Identity) ReadsAll() bool { return len(id.views) == 0 && len(id.services) == 0 }

// MayReadService reports whether the identity may look up feature service
// name as a whole, whatever its views.
func (id *Identity) MayReadService(name string) bool { return slices.Contains(id.services, name) }

// MayReadView reports whether the identity may read features of view name.
func (id *Identity) MayReadView(name string) bool {
	return id.ReadsAll() || slices.Contains(id.views, name)
}

// ViewError is the error of a lookup naming a view the identity may not
// read; it matches ErrPermissionDenied.
func (id *Identity) ViewError(view string) error {
	return fmt.Errorf("%w: token %q may not read view %q (it may read views %v, services %v)", ErrPermissionDenied, id.name, view, id.views, id.services)
}
