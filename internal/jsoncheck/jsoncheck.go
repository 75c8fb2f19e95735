// Package jsoncheck owns featured's rules for JSON text from outside beyond
// the grammar, the ones JSON decoders disagree on. featured decodes outside
// JSON with three decoders, each where a benchmark or an error message asks
// for it (serving's hand-written lookup decoder, valyala/fastjson for
// events, encoding/json for envelopes and definitions); left alone they
// would read the same text three ways: encoding/json turns a lone UTF-16
// surrogate escape or a byte that is not UTF-8 into U+FFFD, fastjson keeps
// the escape's six characters, and a repeated key means the last for one
// and both for another. So every decoder of outside JSON refuses, with an
// error naming the offset:
//
//  1. bytes inside a string that are not valid UTF-8;
//  2. a \u escape of a UTF-16 surrogate that is not a high surrogate
//     followed by a low one (a "lone surrogate");
//  3. an object with the same key twice (compared after unescaping), at
//     any depth, including in values the decoder otherwise ignores;
//  4. nesting deeper than MaxDepth.
//
// NUL ("\u0000") is valid in a string value; entity keys refuse it by their
// own rule (internal/keyenc). Numbers are each decoder's: the conversions
// to int64 and float64 refuse what does not fit, alike (internal/jsonedge
// holds the table of edge cases every decoder is tested against).
//
// Check is for the decoders that cannot apply the rules while they decode
// (fastjson, encoding/json): run it on text they accepted. serving's lookup
// decoder applies them inline, as a second pass would cost its hot path.
package jsoncheck

import (
	"bytes"
	"fmt"
	"sync"
	"unicode/utf16"
	"unicode/utf8"
)

// MaxDepth is the deepest nesting of arrays and objects accepted.
const MaxDepth = 64

// Messages of the rules, shared with the decoders that apply them inline so
// that every path words a refusal alike.
const (
	MsgInvalidUTF8   = "invalid UTF-8 in a string"
	MsgLoneSurrogate = "lone UTF-16 surrogate escape in a string"
	MsgDuplicateKey  = "duplicate key"
	MsgTooDeep       = "nesting too deep"
)

// Error is a broken rule (or, for text no decoder accepted, a syntax
// error) at a byte offset of the text.
type Error struct {
	Offset int
	Msg    string
}

func (e *Error) Error() string { return fmt.Sprintf("offset %d: %s", e.Offset, e.Msg) }

// Check reports the first rule data breaks, or nil. data is one JSON value
// with optional surrounding whitespace.
func Check(data []byte) error {
	c := checkers.Get().(*checker)
	defer func() {
		// The scratch is kept for the next call unless a huge object grew it.
		c.data, c.pos = nil, 0
		if cap(c.keys) <= 1024 && cap(c.unesc) <= 64<<10 {
			checkers.Put(c)
		}
	}()
	c.data, c.keys, c.unesc = data, c.keys[:0], c.unesc[:0]
	c.ws()
	if err := c.value(0); err != nil {
		return err
	}
	if c.ws(); c.pos < len(data) {
		return c.errorf("unexpected data after the JSON value")
	}
	return nil
}

// checkers keeps the scratch of Check: a check allocates nothing once warm.
var checkers = sync.Pool{New: func() any { return new(checker) }}

type checker struct {
	data []byte
	pos  int
	// keys holds the keys of the objects being read, innermost last; an
	// object's own keys start at the index its call remembers.
	keys []key
	// unesc holds the unescaped text of keys that had escapes.
	unesc []byte
}

// key is one object key: data[off:off+n], or unesc[off:off+n] when escaped.
type key struct {
	off, n  int
	escaped bool
}

func (c *checker) bytes(k key) []byte {
	if k.escaped {
		return c.unesc[k.off : k.off+k.n]
	}
	return c.data[k.off : k.off+k.n]
}

func (c *checker) errorf(format string, args ...any) error {
	return &Error{Offset: c.pos, Msg: fmt.Sprintf(format, args...)}
}

func (c *checker) ws() {
	for c.pos < len(c.data) {
		switch c.data[c.pos] {
		case ' ', '\t', '\n', '\r':
			c.pos++
		default:
			return
		}
	}
}

func (c *checker) value(depth int) error {
	if c.pos >= len(c.data) {
		return c.errorf("unexpected end of JSON")
	}
	switch b := c.data[c.pos]; {
	case b == '{':
		return c.object(depth + 1)
	case b == '[':
		return c.array(depth + 1)
	case b == '"':
		_, err := c.str(false)
		return err
	case b == 't':
		return c.literal("true")
	case b == 'f':
		return c.literal("false")
	case b == 'n':
		return c.literal("null")
	case b == '-' || (b >= '0' && b <= '9'):
		return c.number()
	default:
		return c.errorf("invalid character %q", b)
	}
}

func (c *checker) literal(lit string) error {
	if !bytes.HasPrefix(c.data[c.pos:], []byte(lit)) {
		return c.errorf("invalid literal")
	}
	c.pos += len(lit)
	return nil
}

func (c *checker) number() error {
	start := c.pos
	if c.data[c.pos] == '-' {
		c.pos++
	}
	digits := func() int {
		n := 0
		for c.pos < len(c.data) && c.data[c.pos] >= '0' && c.data[c.pos] <= '9' {
			c.pos++
			n++
		}
		return n
	}
	intStart := c.pos
	if n := digits(); n == 0 || (n > 1 && c.data[intStart] == '0') {
		c.pos = start
		return c.errorf("invalid number")
	}
	if c.pos < len(c.data) && c.data[c.pos] == '.' {
		c.pos++
		if digits() == 0 {
			return c.errorf("invalid number")
		}
	}
	if c.pos < len(c.data) && (c.data[c.pos] == 'e' || c.data[c.pos] == 'E') {
		c.pos++
		if c.pos < len(c.data) && (c.data[c.pos] == '+' || c.data[c.pos] == '-') {
			c.pos++
		}
		if digits() == 0 {
			return c.errorf("invalid number")
		}
	}
	return nil
}

func (c *checker) array(depth int) error {
	if depth > MaxDepth {
		return c.errorf("%s (over %d levels)", MsgTooDeep, MaxDepth)
	}
	c.pos++ // [
	c.ws()
	if c.pos < len(c.data) && c.data[c.pos] == ']' {
		c.pos++
		return nil
	}
	for {
		c.ws()
		if err := c.value(depth); err != nil {
			return err
		}
		c.ws()
		if c.pos >= len(c.data) {
			return c.errorf("unexpected end of JSON")
		}
		switch c.data[c.pos] {
		case ',':
			c.pos++
		case ']':
			c.pos++
			return nil
		default:
			return c.errorf("expected ',' or ']'")
		}
	}
}

// smallObject is how many keys an object may have before duplicates are
// found with a map instead of comparing each new key with the others.
const smallObject = 16

func (c *checker) object(depth int) error {
	if depth > MaxDepth {
		return c.errorf("%s (over %d levels)", MsgTooDeep, MaxDepth)
	}
	c.pos++ // {
	first := len(c.keys)
	unescMark := len(c.unesc)
	defer func() {
		c.keys = c.keys[:first]
		c.unesc = c.unesc[:unescMark]
	}()
	var seen map[string]struct{} // for objects past smallObject keys
	c.ws()
	if c.pos < len(c.data) && c.data[c.pos] == '}' {
		c.pos++
		return nil
	}
	for {
		c.ws()
		if c.pos >= len(c.data) || c.data[c.pos] != '"' {
			return c.errorf("expected a key")
		}
		keyAt := c.pos
		k, err := c.str(true)
		if err != nil {
			return err
		}
		kb := c.bytes(k)
		own := c.keys[first:]
		switch {
		case seen != nil:
			if _, dup := seen[string(kb)]; dup {
				return &Error{Offset: keyAt, Msg: fmt.Sprintf("%s %q", MsgDuplicateKey, clip(kb))}
			}
			seen[string(kb)] = struct{}{}
		default:
			for _, o := range own {
				if bytes.Equal(c.bytes(o), kb) {
					return &Error{Offset: keyAt, Msg: fmt.Sprintf("%s %q", MsgDuplicateKey, clip(kb))}
				}
			}
			c.keys = append(c.keys, k)
			if len(own)+1 > smallObject {
				seen = make(map[string]struct{}, 2*smallObject)
				for _, o := range c.keys[first:] {
					seen[string(c.bytes(o))] = struct{}{}
				}
			}
		}
		c.ws()
		if c.pos >= len(c.data) || c.data[c.pos] != ':' {
			return c.errorf("expected ':'")
		}
		c.pos++
		c.ws()
		if err := c.value(depth); err != nil {
			return err
		}
		c.ws()
		if c.pos >= len(c.data) {
			return c.errorf("unexpected end of JSON")
		}
		switch c.data[c.pos] {
		case ',':
			c.pos++
		case '}':
			c.pos++
			return nil
		default:
			return c.errorf("expected ',' or '}'")
		}
	}
}

// clip shortens a key for an error message.
func clip(b []byte) string {
	if len(b) > 64 {
		return string(b[:64]) + "..."
	}
	return string(b)
}

// str checks the string at pos (its opening quote) and moves past it. With
// asKey it returns where the key's text is, unescaping into c.unesc when
// the key has escapes.
func (c *checker) str(asKey bool) (key, error) {
	b := c.data
	p := c.pos + 1
	start := p
	escaped := false
	unescStart := len(c.unesc)
	for {
		run := p
		for p < len(b) && b[p] != '"' && b[p] != '\\' && b[p] >= 0x20 && b[p] < utf8.RuneSelf {
			p++
		}
		if escaped && asKey {
			c.unesc = append(c.unesc, b[run:p]...)
		}
		if p >= len(b) {
			c.pos = p
			return key{}, c.errorf("unterminated string")
		}
		switch ch := b[p]; {
		case ch == '"':
			c.pos = p + 1
			if escaped && asKey {
				return key{off: unescStart, n: len(c.unesc) - unescStart, escaped: true}, nil
			}
			return key{off: start, n: p - start}, nil
		case ch < 0x20:
			c.pos = p
			return key{}, c.errorf("control character 0x%02x in a string", ch)
		case ch >= utf8.RuneSelf:
			r, n := utf8.DecodeRune(b[p:])
			if r == utf8.RuneError && n <= 1 {
				c.pos = p
				return key{}, c.errorf("%s (byte 0x%02x)", MsgInvalidUTF8, ch)
			}
			if escaped && asKey {
				c.unesc = append(c.unesc, b[p:p+n]...)
			}
			p += n
			continue
		}
		// A backslash escape.
		if !escaped && asKey {
			escaped = true
			c.unesc = append(c.unesc, b[start:p]...)
		}
		if p+1 >= len(b) {
			c.pos = p
			return key{}, c.errorf("unterminated string")
		}
		var r rune
		switch e := b[p+1]; e {
		case '"', '\\', '/':
			r = rune(e)
		case 'b':
			r = '\b'
		case 'f':
			r = '\f'
		case 'n':
			r = '\n'
		case 'r':
			r = '\r'
		case 't':
			r = '\t'
		case 'u':
			var ok bool
			if r, ok = Hex4(b, p+2); !ok {
				c.pos = p
				return key{}, c.errorf("invalid \\u escape")
			}
			if utf16.IsSurrogate(r) {
				r2, ok2 := rune(0), false
				if p+7 < len(b) && b[p+6] == '\\' && b[p+7] == 'u' {
					r2, ok2 = Hex4(b, p+8)
				}
				dec := utf16.DecodeRune(r, r2)
				if !ok2 || dec == utf8.RuneError {
					c.pos = p
					return key{}, c.errorf("%s (\\u%04x)", MsgLoneSurrogate, r)
				}
				r = dec
				p += 6
			}
			p += 4
		default:
			c.pos = p
			return key{}, c.errorf("invalid escape \\%c", e)
		}
		p += 2
		if asKey {
			c.unesc = utf8.AppendRune(c.unesc, r)
		}
	}
}

// Hex4 reads the four hex digits of a \u escape at b[p:]; serving's
// lookup decoder shares it.
func Hex4(b []byte, p int) (rune, bool) {
	if p+4 > len(b) {
		return 0, false
	}
	var r rune
	for _, ch := range b[p : p+4] {
		switch {
		case ch >= '0' && ch <= '9':
			ch -= '0'
		case ch >= 'a' && ch <= 'f':
			ch = ch - 'a' + 10
		case ch >= 'A' && ch <= 'F':
			ch = ch - 'A' + 10
		default:
			return 0, false
		}
		r = r<<4 | rune(ch)
	}
	return r, true
}
