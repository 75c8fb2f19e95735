package registry

import (
	"errors"
	"fmt"
	"strings"
)

// Sentinel errors. Callers test them with errors.Is; serving maps them to
// status codes.
var (
	// ErrInvalid is matched by every *ValidationError: a definition (or a
	// definitions document) that is malformed or breaks a rule.
	ErrInvalid        = errors.New("registry: invalid definitions")
	ErrUnknownEntity  = errors.New("registry: unknown entity")
	ErrUnknownSource  = errors.New("registry: unknown source")
	ErrUnknownView    = errors.New("registry: unknown view")
	ErrUnknownVersion = errors.New("registry: unknown version")
	ErrUnknownFeature = errors.New("registry: unknown feature")
	ErrUnknownService = errors.New("registry: unknown service")
	// ErrBadRef is a feature reference that does not parse ("view:feat" or
	// "view@v2:feat").
	ErrBadRef = errors.New("registry: bad feature reference")
	// ErrInUse refuses a Delete of an object that live objects still use.
	ErrInUse = errors.New("registry: in use")
	// ErrCorrupt is a registry file that cannot be loaded.
	ErrCorrupt = errors.New("registry: corrupt registry file")
	// ErrClosed is returned by Apply and Delete after Close.
	ErrClosed = errors.New("registry: closed")
)

// ValidationError is one problem in a definitions document, named by its
// path in the document, e.g.
// "feature_views[0].features[2].window: 30d exceeds ttl 8d".
// errors.Is(err, ErrInvalid) holds for every ValidationError. Plan and Apply
// return all of them at once, joined with errors.Join.
type ValidationError struct {
	Path string
	Msg  string
}

func (e *ValidationError) Error() string {
	if e.Path == "" {
		return e.Msg
	}
	return e.Path + ": " + e.Msg
}

// Is makes errors.Is(err, ErrInvalid) true.
func (e *ValidationError) Is(target error) bool { return target == ErrInvalid }

// ValidationErrors returns every *ValidationError in err's tree (err may be
// one ValidationError or several joined), in order.
func ValidationErrors(err error) []*ValidationError {
	var out []*ValidationError
	var walk func(error)
	walk = func(err error) {
		switch e := err.(type) {
		case nil:
		case *ValidationError:
			out = append(out, e)
		case interface{ Unwrap() []error }:
			for _, x := range e.Unwrap() {
				walk(x)
			}
		case interface{ Unwrap() error }:
			walk(e.Unwrap())
		}
	}
	walk(err)
	return out
}

// RefError is one feature reference that does not resolve. Err wraps one of
// ErrBadRef, ErrUnknownView, ErrUnknownVersion or ErrUnknownFeature.
type RefError struct {
	Ref string
	Err error
}

func (e *RefError) Error() string { return fmt.Sprintf("%q: %v", e.Ref, e.Err) }
func (e *RefError) Unwrap() error { return e.Err }

// ResolveError lists every reference of a Resolve call that failed. It
// unwraps to each RefError, so errors.Is(err, ErrUnknownFeature) holds when
// any reference names an unknown feature.
type ResolveError struct {
	Refs []*RefError
}

func (e *ResolveError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "registry: %d bad feature reference", len(e.Refs))
	if len(e.Refs) != 1 {
		b.WriteByte('s')
	}
	for i, r := range e.Refs {
		if i == 0 {
			b.WriteString(": ")
		} else {
			b.WriteString("; ")
		}
		b.WriteString(r.Error())
	}
	return b.String()
}

func (e *ResolveError) Unwrap() []error {
	errs := make([]error, len(e.Refs))
	for i, r := range e.Refs {
		errs[i] = r
	}
	return errs
}

// errList collects ValidationErrors in the order they are found.
type errList struct {
	errs []error
}

func (l *errList) add(path, format string, args ...any) {
	l.errs = append(l.errs, &ValidationError{Path: path, Msg: fmt.Sprintf(format, args...)})
}

func (l *errList) len() int { return len(l.errs) }

func (l *errList) err() error {
	if len(l.errs) == 0 {
		return nil
	}
	return errors.Join(l.errs...)
}
