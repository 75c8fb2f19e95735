package serving

import (
	"errors"
	"fmt"
	"strconv"
	"time"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/featured-dev/featured/aggregate"
	"github.com/featured-dev/featured/internal/jsoncheck"
)

// This file is the hand-written decoder of the lookup request body, the one
// shape shared by POST /get-online-features (Feast's request) and
// POST /v1/features:
//
//	{"features": ["view:feat", ...]} or {"feature_service": "name"},
//	"entities": {"<join_key>": [v1, v2, ...], ...}, "full_feature_names": bool,
//	"include_feature_view_version_metadata": bool, "max_staleness_ms": int
//
// It is a single pass over the body with no reflection: every string it keeps
// is copied into one arena of the pooled request, so a warm request decodes
// with no allocation. Fields it does not know are skipped (after checking
// that they are well-formed JSON), as Feast's server ignores them. Errors
// name the byte offset and the field.

// maxDepth bounds the nesting of skipped values so that a hostile body cannot
// exhaust the stack.
const maxDepth = 64

// span is a string held in a request's arena.
type span struct{ off, n int32 }

// entityValue is one entity key as sent: a string or an integer.
type entityValue struct {
	isInt bool
	i     int64
	s     span
}

// lookupRequest is a decoded lookup request. Its slices are reused across
// requests (it lives in a pool), so it holds no pointer into the body.
type lookupRequest struct {
	arena []byte

	features    []span
	hasFeatures bool // "features" was present and not null

	service    span
	hasService bool // "feature_service" was present and not null

	fullNames bool
	// versionMeta is Feast's include_feature_view_version_metadata: the
	// response names the view version each feature was read from.
	versionMeta bool
	// maxStaleness is the lookup's own staleness bound (max_staleness_ms,
	// the Featured-Max-Staleness header); 0 for the node's. Only a routed
	// lookup reads it.
	maxStaleness time.Duration

	// keys are the entity key names in the order sent; all holds every
	// key's values, key after key: key k's are all[colOff[k]:colOff[k+1]]
	// (colOff has one more entry than keys).
	keys   []span
	all    []entityValue
	colOff []int32
	// hasEntities is set when "entities" was present and not null.
	hasEntities bool

	// Set by checkEntities once the request is bound to its plan: values
	// is the column of the plan's first join key (one entry per entity
	// row), keyOf[j] the request key that carries the plan's join key j.
	values []entityValue
	keyOf  []int
	// outKeys are the request keys a Feast response returns, in the order
	// sent; keyKinds[k] is request key k's type (0 for a key no entity
	// has).
	outKeys  []int
	keyKinds []aggregate.Kind
}

// col returns the values of request key k.
func (r *lookupRequest) col(k int) []entityValue {
	return r.all[r.colOff[k]:r.colOff[k+1]]
}

// addCol ends the column of the key just appended to keys: every value
// appended to all since the previous key's end is its.
func (r *lookupRequest) addCol() {
	if len(r.colOff) == 0 {
		r.colOff = append(r.colOff, 0)
	}
	r.colOff = append(r.colOff, int32(len(r.all)))
}

func (r *lookupRequest) reset() {
	r.arena = r.arena[:0]
	r.features = r.features[:0]
	r.hasFeatures = false
	r.service = span{}
	r.hasService = false
	r.fullNames = false
	r.versionMeta = false
	r.maxStaleness = 0
	r.keys = r.keys[:0]
	r.all = r.all[:0]
	r.colOff = r.colOff[:0]
	r.values = nil
	r.keyOf = r.keyOf[:0]
	r.outKeys = r.outKeys[:0]
	r.keyKinds = r.keyKinds[:0]
	r.hasEntities = false
}

// str returns the bytes of s; they alias the arena.
func (r *lookupRequest) str(s span) []byte { return r.arena[s.off : s.off+s.n] }

// SyntaxError is a malformed request body: the byte offset where decoding
// stopped, the field being decoded (a path like entities.user_id[3]) and what
// was wrong.
type SyntaxError struct {
	Offset int
	Field  string
	Msg    string
}

func (e *SyntaxError) Error() string {
	if e.Field == "" {
		return fmt.Sprintf("serving: malformed request body at offset %d: %s", e.Offset, e.Msg)
	}
	return fmt.Sprintf("serving: malformed request body at offset %d: %s: %s", e.Offset, e.Field, e.Msg)
}

// Unwrap makes a SyntaxError match ErrBadRequest.
func (e *SyntaxError) Unwrap() error { return ErrBadRequest }

// decoder is the state of one decode.
type decoder struct {
	data []byte
	pos  int
	req  *lookupRequest
	// The path of the value being decoded, for error messages, kept in
	// parts so that it is only built when an error occurs: field, or the
	// unknown field's name in unknown; then .key when hasKey; then [idx]
	// when idx >= 0.
	field   string
	unknown span
	key     span
	hasKey  bool
	idx     int
	// limits; 0 means none.
	maxFeatures, maxEntities int
	// sawUnknown is set by an unknown field: the whole body then goes
	// through jsoncheck.Check once decoded, as the rules hold in values the
	// decoder skips too (a repeated key inside them, an unknown field
	// repeated), and unknown fields are too rare to check inline.
	sawUnknown bool
	// keySet holds the join keys once there are many (seenKey).
	keySet map[string]struct{}
}

// decodeLookup decodes body into req (which it resets first). maxFeatures and
// maxEntities stop the decoder early on oversized requests; 0 means no limit.
func decodeLookup(body []byte, req *lookupRequest, maxFeatures, maxEntities int) error {
	req.reset()
	d := decoder{data: body, req: req, maxFeatures: maxFeatures, maxEntities: maxEntities, idx: -1}
	if err := d.top(); err != nil {
		return err
	}
	req.bindFirst()
	return nil
}

// bindFirst takes the first key as the one the request is about, until
// checkEntities binds the request to its plan.
func (r *lookupRequest) bindFirst() {
	if len(r.keys) > 0 {
		r.values = r.col(0)
		r.outKeys = append(r.outKeys[:0], 0)
	}
}

func (d *decoder) path() string {
	f := d.field
	if f == "" && d.unknown.n > 0 {
		f = clipValue(string(d.req.str(d.unknown)))
	}
	if d.hasKey {
		f += "." + clipValue(string(d.req.str(d.key)))
	}
	if d.idx >= 0 {
		f += "[" + strconv.Itoa(d.idx) + "]"
	}
	return f
}

func (d *decoder) errorf(format string, args ...any) error {
	return &SyntaxError{Offset: d.pos, Field: d.path(), Msg: fmt.Sprintf(format, args...)}
}

func (d *decoder) ws() {
	for d.pos < len(d.data) {
		switch d.data[d.pos] {
		case ' ', '\t', '\n', '\r':
			d.pos++
		default:
			return
		}
	}
}

// peek skips whitespace and returns the next byte, or 0 at the end.
func (d *decoder) peek() byte {
	d.ws()
	if d.pos >= len(d.data) {
		return 0
	}
	return d.data[d.pos]
}

func (d *decoder) describe() string {
	if d.pos >= len(d.data) {
		return "end of body"
	}
	c := d.data[d.pos]
	if c >= 0x20 && c < 0x7f {
		return strconv.QuoteRune(rune(c))
	}
	return fmt.Sprintf("byte 0x%02x", c)
}

func (d *decoder) expect(c byte, what string) error {
	if d.peek() != c {
		return d.errorf("expected %s, found %s", what, d.describe())
	}
	d.pos++
	return nil
}

func (d *decoder) top() error {
	if d.peek() != '{' {
		return d.errorf("expected a JSON object, found %s", d.describe())
	}
	d.pos++
	var seenFeatures, seenService, seenEntities, seenFull, seenMeta, seenStale bool
	first := true
	for {
		if d.peek() == '}' {
			d.pos++
			break
		}
		if !first {
			if err := d.expect(',', "',' or '}'"); err != nil {
				return err
			}
		}
		first = false
		d.field, d.unknown, d.hasKey, d.idx = "", span{}, false, -1
		if d.peek() != '"' {
			return d.errorf("expected a field name, found %s", d.describe())
		}
		keySpan, err := d.spanString()
		if err != nil {
			return err
		}
		key := d.req.str(keySpan)
		var which int
		switch string(key) {
		case "features":
			which, d.field = 1, "features"
		case "feature_service":
			which, d.field = 2, "feature_service"
		case "entities":
			which, d.field = 3, "entities"
		case "full_feature_names":
			which, d.field = 4, "full_feature_names"
		case "include_feature_view_version_metadata":
			which, d.field = 5, "include_feature_view_version_metadata"
		case "max_staleness_ms":
			which, d.field = 6, "max_staleness_ms"
		}
		if which == 0 {
			d.unknown, d.sawUnknown = keySpan, true
		}
		if err := d.expect(':', "':'"); err != nil {
			return err
		}
		var dup bool
		switch which {
		case 1:
			dup, seenFeatures = seenFeatures, true
		case 2:
			dup, seenService = seenService, true
		case 3:
			dup, seenEntities = seenEntities, true
		case 4:
			dup, seenFull = seenFull, true
		case 5:
			dup, seenMeta = seenMeta, true
		case 6:
			dup, seenStale = seenStale, true
		}
		if dup {
			return d.errorf("%s", jsoncheck.MsgDuplicateKey)
		}
		switch which {
		case 1:
			err = d.features()
		case 2:
			err = d.featureService()
		case 3:
			err = d.entities()
		case 4:
			err = d.boolean(&d.req.fullNames)
		case 5:
			err = d.boolean(&d.req.versionMeta)
		case 6:
			err = d.staleness()
		default:
			err = d.skip(0)
		}
		if err != nil {
			return err
		}
		d.field, d.unknown, d.hasKey, d.idx = "", span{}, false, -1
	}
	d.field, d.unknown, d.hasKey, d.idx = "", span{}, false, -1
	if d.ws(); d.pos < len(d.data) {
		return d.errorf("unexpected %s after the request object", d.describe())
	}
	if d.sawUnknown {
		if err := jsoncheck.Check(d.data); err != nil {
			var je *jsoncheck.Error
			errors.As(err, &je)
			return &SyntaxError{Offset: je.Offset, Msg: je.Msg}
		}
	}
	return nil
}

func (d *decoder) null() bool {
	if d.peek() == 'n' && len(d.data)-d.pos >= 4 && string(d.data[d.pos:d.pos+4]) == "null" {
		d.pos += 4
		return true
	}
	return false
}

func (d *decoder) features() error {
	if d.null() {
		return nil
	}
	if d.peek() != '[' {
		return d.errorf("expected an array of feature references, found %s", d.describe())
	}
	d.pos++
	d.req.hasFeatures = true
	for i := 0; ; i++ {
		if d.peek() == ']' {
			d.pos++
			return nil
		}
		if i > 0 {
			if err := d.expect(',', "',' or ']'"); err != nil {
				return err
			}
		}
		if d.maxFeatures > 0 && i >= d.maxFeatures {
			return &LimitError{Field: "features", Limit: d.maxFeatures, What: "features"}
		}
		d.idx = i
		if d.peek() != '"' {
			return d.errorf("expected a feature reference string, found %s", d.describe())
		}
		s, err := d.spanString()
		if err != nil {
			return err
		}
		d.req.features = append(d.req.features, s)
	}
}

func (d *decoder) featureService() error {
	if d.null() {
		return nil
	}
	if d.peek() != '"' {
		return d.errorf("expected a feature service name, found %s", d.describe())
	}
	s, err := d.spanString()
	if err != nil {
		return err
	}
	d.req.service, d.req.hasService = s, true
	return nil
}

// boolean decodes true, false or null (false) into dst.
func (d *decoder) boolean(dst *bool) error {
	if d.null() {
		return nil
	}
	rest := d.data[d.pos:]
	switch {
	case len(rest) >= 4 && string(rest[:4]) == "true":
		*dst = true
		d.pos += 4
	case len(rest) >= 5 && string(rest[:5]) == "false":
		d.pos += 5
	default:
		return d.errorf("expected true or false, found %s", d.describe())
	}
	return nil
}

// staleness decodes max_staleness_ms: null, or a non-negative integer of
// milliseconds.
func (d *decoder) staleness() error {
	if d.null() {
		return nil
	}
	start := d.pos
	end, isInt, err := d.scanNumber()
	if err != nil {
		return err
	}
	ms, perr := strconv.ParseInt(string(d.data[start:end]), 10, 64)
	if !isInt || perr != nil || ms < 0 || ms > maxStalenessMillis {
		return d.errorf("%s is not a number of milliseconds from 0 to %d", clipValue(string(d.data[start:end])), int64(maxStalenessMillis))
	}
	d.pos = end
	d.req.maxStaleness = time.Duration(ms) * time.Millisecond
	return nil
}

func (d *decoder) entities() error {
	if d.null() {
		return nil
	}
	if d.peek() != '{' {
		return d.errorf("expected an object of join key -> values, found %s", d.describe())
	}
	d.pos++
	d.req.hasEntities = true
	for k := 0; ; k++ {
		if d.peek() == '}' {
			d.pos++
			return nil
		}
		if k > 0 {
			if err := d.expect(',', "',' or '}'"); err != nil {
				return err
			}
		}
		if d.peek() != '"' {
			return d.errorf("expected a join key name, found %s", d.describe())
		}
		key, err := d.spanString()
		if err != nil {
			return err
		}
		if d.seenKey(key) {
			d.key, d.hasKey = key, true
			return d.errorf("%s", jsoncheck.MsgDuplicateKey)
		}
		d.req.keys = append(d.req.keys, key)
		d.key, d.hasKey = key, true
		if err := d.expect(':', "':'"); err != nil {
			return err
		}
		if err := d.entityValues(); err != nil {
			return err
		}
		d.req.addCol()
		d.hasKey, d.idx = false, -1
	}
}

// seenKey reports whether the join key at key was seen before in this
// request's entities, and records it. A request has one join key; a hostile
// one may have a million, so past a few they go in a map instead of being
// compared with every other.
func (d *decoder) seenKey(key span) bool {
	name := d.req.str(key)
	if d.keySet == nil {
		for _, k := range d.req.keys {
			if string(d.req.str(k)) == string(name) {
				return true
			}
		}
		if len(d.req.keys) < 8 {
			return false
		}
		d.keySet = make(map[string]struct{}, 2*len(d.req.keys))
		for _, k := range d.req.keys {
			d.keySet[string(d.req.str(k))] = struct{}{}
		}
	}
	if _, dup := d.keySet[string(name)]; dup {
		return true
	}
	d.keySet[string(name)] = struct{}{}
	return false
}

// entityValues decodes one key's array into the request's values.
func (d *decoder) entityValues() error {
	if d.peek() != '[' {
		return d.errorf("expected an array of entity keys, found %s", d.describe())
	}
	d.pos++
	for i := 0; ; i++ {
		if d.peek() == ']' {
			d.pos++
			return nil
		}
		if i > 0 {
			if err := d.expect(',', "',' or ']'"); err != nil {
				return err
			}
		}
		if d.maxEntities > 0 && i >= d.maxEntities {
			return &LimitError{Field: "entities." + string(d.req.str(d.key)), Limit: d.maxEntities, What: "entity rows"}
		}
		d.idx = i
		var v entityValue
		switch c := d.peek(); {
		case c == '"':
			s, err := d.spanString()
			if err != nil {
				return err
			}
			v.s = s
		case c == '-' || (c >= '0' && c <= '9'):
			n, err := d.integer()
			if err != nil {
				return err
			}
			v.isInt, v.i = true, n
		default:
			return d.errorf("expected a string or an integer entity key, found %s", d.describe())
		}
		d.req.all = append(d.req.all, v)
	}
}

// integer decodes a JSON number that must be an int64.
func (d *decoder) integer() (int64, error) {
	start := d.pos
	end, isInt, err := d.scanNumber()
	if err != nil {
		return 0, err
	}
	if !isInt {
		return 0, d.errorf("entity key %s is not an integer", clipValue(string(d.data[start:end])))
	}
	n, perr := strconv.ParseInt(string(d.data[start:end]), 10, 64)
	if perr != nil {
		d.pos = start
		return 0, d.errorf("entity key %s overflows int64", clipValue(string(d.data[start:end])))
	}
	d.pos = end
	return n, nil
}

// scanNumber checks the JSON number grammar at pos and returns its end and
// whether it has neither fraction nor exponent. pos is left at the start.
func (d *decoder) scanNumber() (end int, isInt bool, err error) {
	p := d.pos
	b := d.data
	if p < len(b) && b[p] == '-' {
		p++
	}
	switch {
	case p < len(b) && b[p] == '0':
		p++
	case p < len(b) && b[p] >= '1' && b[p] <= '9':
		for p < len(b) && b[p] >= '0' && b[p] <= '9' {
			p++
		}
	default:
		d.pos = p
		return 0, false, d.errorf("invalid number")
	}
	isInt = true
	if p < len(b) && b[p] == '.' {
		isInt = false
		p++
		if p >= len(b) || b[p] < '0' || b[p] > '9' {
			d.pos = p
			return 0, false, d.errorf("invalid number: no digit after '.'")
		}
		for p < len(b) && b[p] >= '0' && b[p] <= '9' {
			p++
		}
	}
	if p < len(b) && (b[p] == 'e' || b[p] == 'E') {
		isInt = false
		p++
		if p < len(b) && (b[p] == '+' || b[p] == '-') {
			p++
		}
		if p >= len(b) || b[p] < '0' || b[p] > '9' {
			d.pos = p
			return 0, false, d.errorf("invalid number: no digit in exponent")
		}
		for p < len(b) && b[p] >= '0' && b[p] <= '9' {
			p++
		}
	}
	return p, isInt, nil
}

// spanString decodes a JSON string at pos into the arena.
func (d *decoder) spanString() (span, error) {
	start := len(d.req.arena)
	if err := d.stringInto(); err != nil {
		return span{}, err
	}
	return span{off: int32(start), n: int32(len(d.req.arena) - start)}, nil
}

// plainByte marks the bytes a string copies as they are: ASCII from space
// on, but for the quote and the backslash.
var plainByte = func() (t [256]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// stringInto decodes the JSON string at pos (which is at its opening quote)
// and appends its value to the arena. Bytes that are not UTF-8 and lone
// surrogate escapes are refused (internal/jsoncheck's rules).
func (d *decoder) stringInto() error {
	b := d.data
	p := d.pos + 1
	for {
		// Copy the run of plain bytes (and valid UTF-8) in one go.
		run := p
		for p < len(b) {
			if plainByte[b[p]] {
				p++
				continue
			}
			if b[p] < utf8.RuneSelf {
				break
			}
			r, n := utf8.DecodeRune(b[p:])
			if r == utf8.RuneError && n <= 1 {
				d.pos = p
				return d.errorf("%s (byte 0x%02x)", jsoncheck.MsgInvalidUTF8, b[p])
			}
			p += n
		}
		d.req.arena = append(d.req.arena, b[run:p]...)
		if p >= len(b) {
			d.pos = p
			return d.errorf("unterminated string")
		}
		switch c := b[p]; {
		case c == '"':
			d.pos = p + 1
			return nil
		case c < 0x20:
			d.pos = p
			return d.errorf("control character 0x%02x in string", c)
		}
		// A backslash escape.
		if p+1 >= len(b) {
			d.pos = p
			return d.errorf("unterminated string")
		}
		switch e := b[p+1]; e {
		case '"', '\\', '/':
			d.req.arena = append(d.req.arena, e)
			p += 2
		case 'b':
			d.req.arena = append(d.req.arena, '\b')
			p += 2
		case 'f':
			d.req.arena = append(d.req.arena, '\f')
			p += 2
		case 'n':
			d.req.arena = append(d.req.arena, '\n')
			p += 2
		case 'r':
			d.req.arena = append(d.req.arena, '\r')
			p += 2
		case 't':
			d.req.arena = append(d.req.arena, '\t')
			p += 2
		case 'u':
			r, ok := jsoncheck.Hex4(b, p+2)
			if !ok {
				d.pos = p
				return d.errorf("invalid \\u escape")
			}
			if utf16.IsSurrogate(r) {
				// A high surrogate followed by a low one is one rune;
				// anything else is refused (encoding/json would make it
				// U+FFFD, fastjson keep the escape's text).
				r2, ok2 := rune(0), false
				if p+7 < len(b) && b[p+6] == '\\' && b[p+7] == 'u' {
					r2, ok2 = jsoncheck.Hex4(b, p+8)
				}
				dec := utf16.DecodeRune(r, r2)
				if !ok2 || dec == utf8.RuneError {
					d.pos = p
					return d.errorf("%s (\\u%04x)", jsoncheck.MsgLoneSurrogate, r)
				}
				r = dec
				p += 6
			}
			p += 6
			d.req.arena = utf8.AppendRune(d.req.arena, r)
		default:
			d.pos = p
			return d.errorf("invalid escape \\%c", e)
		}
	}
}

// skip checks and skips one JSON value of a field the decoder ignores.
func (d *decoder) skip(depth int) error {
	if depth > maxDepth {
		return d.errorf("nesting deeper than %d", maxDepth)
	}
	switch c := d.peek(); {
	case c == '"':
		mark := len(d.req.arena)
		err := d.stringInto()
		d.req.arena = d.req.arena[:mark]
		return err
	case c == '{':
		d.pos++
		for i := 0; ; i++ {
			if d.peek() == '}' {
				d.pos++
				return nil
			}
			if i > 0 {
				if err := d.expect(',', "',' or '}'"); err != nil {
					return err
				}
			}
			if d.peek() != '"' {
				return d.errorf("expected a field name, found %s", d.describe())
			}
			mark := len(d.req.arena)
			err := d.stringInto()
			d.req.arena = d.req.arena[:mark]
			if err != nil {
				return err
			}
			if err := d.expect(':', "':'"); err != nil {
				return err
			}
			if err := d.skip(depth + 1); err != nil {
				return err
			}
		}
	case c == '[':
		d.pos++
		for i := 0; ; i++ {
			if d.peek() == ']' {
				d.pos++
				return nil
			}
			if i > 0 {
				if err := d.expect(',', "',' or ']'"); err != nil {
					return err
				}
			}
			if err := d.skip(depth + 1); err != nil {
				return err
			}
		}
	case c == '-' || (c >= '0' && c <= '9'):
		end, _, err := d.scanNumber()
		if err != nil {
			return err
		}
		d.pos = end
		return nil
	default:
		rest := d.data[d.pos:]
		for _, lit := range [...]string{"true", "false", "null"} {
			if len(rest) >= len(lit) && string(rest[:len(lit)]) == lit {
				d.pos += len(lit)
				return nil
			}
		}
		return d.errorf("expected a JSON value, found %s", d.describe())
	}
}
