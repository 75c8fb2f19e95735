package serving

import (
	"math"
	"strconv"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/featured-dev/featured/aggregate"
)

// This file holds the append-style JSON writers of the hot path. Each appends
// to a caller's buffer (pooled by the handlers) and allocates nothing.

// fieldStatus mirrors Feast's FieldStatus (and featuredv1.FieldStatus, with
// the same numbers).
type fieldStatus uint8

const (
	statusInvalid       fieldStatus = 0
	statusPresent       fieldStatus = 1
	statusNullValue     fieldStatus = 2
	statusNotFound      fieldStatus = 3
	statusOutsideMaxAge fieldStatus = 4
)

var statusJSON = [...]string{
	statusInvalid:       `"INVALID"`,
	statusPresent:       `"PRESENT"`,
	statusNullValue:     `"NULL_VALUE"`,
	statusNotFound:      `"NOT_FOUND"`,
	statusOutsideMaxAge: `"OUTSIDE_MAX_AGE"`,
}

// statusOf maps a read result to its wire status. A present value that JSON
// cannot carry (a NaN or infinite float, which a float sum can overflow to)
// is INVALID and served as null.
func statusOf(r *aggregate.Result) fieldStatus {
	switch r.Status {
	case aggregate.StatusPresent:
		if !representable(&r.Value) {
			return statusInvalid
		}
		return statusPresent
	case aggregate.StatusNull:
		return statusNullValue
	case aggregate.StatusNotFound:
		return statusNotFound
	default:
		return statusInvalid
	}
}

func representable(v *aggregate.Value) bool {
	switch v.Kind {
	case aggregate.KindFloat64:
		return !math.IsNaN(v.F) && !math.IsInf(v.F, 0)
	case aggregate.KindList:
		for i := range v.L {
			if !representable(&v.L[i]) {
				return false
			}
		}
	}
	return true
}

// appendValue appends v as JSON: int64 and float64 as numbers, strings as
// strings, bools as true/false, lists as arrays, null as null. Floats use the
// shortest representation that round-trips (strconv 'f' or, outside
// [1e-6, 1e21), 'e'), and always read back as floats: an integral float gets
// a ".0" suffix ("12.0", as Python's json writes it), so a client in a typed
// language does not see a float column turn into integers. Non-finite floats
// (never produced by statusPresent values) are written as null.
func appendValue(b []byte, v *aggregate.Value) []byte {
	switch v.Kind {
	case aggregate.KindInt64:
		return strconv.AppendInt(b, v.I, 10)
	case aggregate.KindFloat64:
		return appendFloat(b, v.F)
	case aggregate.KindString:
		return appendString(b, v.S)
	case aggregate.KindBool:
		if v.I != 0 {
			return append(b, "true"...)
		}
		return append(b, "false"...)
	case aggregate.KindList:
		b = append(b, '[')
		for i := range v.L {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendValue(b, &v.L[i])
		}
		return append(b, ']')
	default:
		return append(b, "null"...)
	}
}

func appendFloat(b []byte, f float64) []byte {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return append(b, "null"...)
	}
	abs := math.Abs(f)
	if abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		start := len(b)
		b = strconv.AppendFloat(b, f, 'e', -1, 64)
		// 1e-07 -> 1e-7, as encoding/json does.
		if n := len(b) - start; n >= 4 && b[len(b)-4] == 'e' && b[len(b)-3] == '-' && b[len(b)-2] == '0' {
			b[len(b)-2] = b[len(b)-1]
			b = b[:len(b)-1]
		}
		return b
	}
	start := len(b)
	b = strconv.AppendFloat(b, f, 'f', -1, 64)
	for _, c := range b[start:] {
		if c == '.' {
			return b
		}
	}
	return append(b, ".0"...)
}

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string. Quotes, backslashes and control
// characters are escaped; invalid UTF-8 becomes U+FFFD, as encoding/json does,
// so the output is always valid JSON.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i++
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// appendBytesString is appendString for bytes (no conversion, no allocation).
func appendBytesString(b []byte, s []byte) []byte {
	// The compiler does not allocate for this conversion: the string does not
	// escape appendString.
	return appendString(b, unsafeString(s))
}

// appendTimestamp appends ms (Unix milliseconds) as a quoted RFC 3339 UTC
// timestamp with a Z: whole seconds as 2006-01-02T15:04:05Z, otherwise with
// three fractional digits (2006-01-02T15:04:05.123Z), which is how protobuf's
// JSON mapping of Timestamp, and so Feast, writes them.
func appendTimestamp(b []byte, ms int64) []byte {
	var c tsCache
	return c.append(b, ms)
}

// tsCache formats timestamps, remembering the date of the last one: the
// timestamps of one response mostly fall on a day or two, and the calendar
// arithmetic is the expensive part.
type tsCache struct {
	day  int64
	ok   bool
	date [10]byte // YYYY-MM-DD
}

func (c *tsCache) append(b []byte, ms int64) []byte {
	secs := ms / 1000
	frac := ms % 1000
	if frac < 0 {
		frac += 1000
		secs--
	}
	days := secs / 86400
	rem := secs % 86400
	if rem < 0 {
		rem += 86400
		days--
	}
	if !c.ok || c.day != days {
		y, m, d := civil(days)
		if y < 0 || y > 9999 {
			b = append(b, '"')
			b = time.UnixMilli(ms).UTC().AppendFormat(b, "2006-01-02T15:04:05.999Z07:00")
			return append(b, '"')
		}
		c.date = [10]byte{byte('0' + y/1000), byte('0' + y/100%10), byte('0' + y/10%10), byte('0' + y%10), '-',
			byte('0' + m/10), byte('0' + m%10), '-', byte('0' + d/10), byte('0' + d%10)}
		c.day, c.ok = days, true
	}
	b = append(b, '"')
	b = append(b, c.date[:]...)
	b = append(b, 'T',
		byte('0'+rem/36000), byte('0'+rem/3600%10), ':',
		byte('0'+rem%3600/600), byte('0'+rem%3600/60%10), ':',
		byte('0'+rem%60/10), byte('0'+rem%10))
	if frac != 0 {
		b = append(b, '.', byte('0'+frac/100), byte('0'+frac/10%10), byte('0'+frac%10))
	}
	return append(b, 'Z', '"')
}

// civil converts days since 1970-01-01 to a proleptic Gregorian date (Howard
// Hinnant's civil_from_days).
func civil(days int64) (year, month, day int64) {
	z := days + 719468
	era := z / 146097
	if z < 0 && z%146097 != 0 {
		era--
	}
	doe := z - era*146097
	yoe := (doe - doe/1460 + doe/36524 - doe/146096) / 365
	year = yoe + era*400
	doy := doe - (365*yoe + yoe/4 - yoe/100)
	mp := (5*doy + 2) / 153
	day = doy - (153*mp+2)/5 + 1
	if mp < 10 {
		month = mp + 3
	} else {
		month = mp - 9
	}
	if month <= 2 {
		year++
	}
	return year, month, day
}

func unsafeString(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

func appendInt(b []byte, i int64) []byte { return strconv.AppendInt(b, i, 10) }
