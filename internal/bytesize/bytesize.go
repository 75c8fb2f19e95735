// Package bytesize parses and prints byte counts the way featured's flags
// and query parameters take them: a plain count of bytes ("1048576"), or a
// whole number of KiB, MiB or GiB ("512MiB"; 1 MiB = 1048576 bytes). The
// decimal units KB, MB and GB are refused rather than guessed at, so that
// "512MB" cannot silently mean 512 MiB to one reader and 512 000 000 bytes
// to another.
package bytesize

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

var units = []struct {
	suffix string
	bytes  int64
}{
	{"GiB", 1 << 30},
	{"MiB", 1 << 20},
	{"KiB", 1 << 10},
}

// Parse parses s: digits, optionally followed by KiB, MiB or GiB (in any
// letter case). It returns the count of bytes, which may be zero.
func Parse(s string) (int64, error) {
	num, mult := s, int64(1)
	for _, u := range units {
		if len(s) > len(u.suffix) && strings.EqualFold(s[len(s)-len(u.suffix):], u.suffix) {
			num, mult = s[:len(s)-len(u.suffix)], u.bytes
			break
		}
	}
	if num == "" || strings.TrimLeft(num, "0123456789") != "" {
		return 0, syntaxError(s)
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n > math.MaxInt64/mult {
		return 0, fmt.Errorf("%q is more bytes than fit in an int64", s)
	}
	return n * mult, nil
}

func syntaxError(s string) error {
	up := strings.ToUpper(s)
	for _, u := range []string{"KB", "MB", "GB", "K", "M", "G"} {
		if num, ok := strings.CutSuffix(up, u); ok && num != "" && strings.TrimLeft(num, "0123456789") == "" {
			return fmt.Errorf("%q: %s is ambiguous; write bytes or KiB, MiB, GiB (1 MiB = 1048576 bytes)", s, s[len(num):])
		}
	}
	return fmt.Errorf("%q is not a size: want bytes or a whole number of KiB, MiB or GiB (e.g. 512MiB)", s)
}

// Format prints n in the largest of GiB, MiB and KiB that divides it
// exactly, or in bytes: Format(512<<20) is "512MiB", Format(1000) is
// "1000". Parse(Format(n)) is n.
func Format(n int64) string {
	for _, u := range units {
		if n != 0 && n%u.bytes == 0 {
			return strconv.FormatInt(n/u.bytes, 10) + u.suffix
		}
	}
	return strconv.FormatInt(n, 10)
}

// Size is a count of bytes. *Size is a flag.Value that parses with Parse
// and refuses zero, so a Size flag left at zero means "not given".
type Size int64

// String prints the size with Format.
func (s Size) String() string { return Format(int64(s)) }

// Set parses v with Parse; zero bytes is an error.
func (s *Size) Set(v string) error {
	n, err := Parse(v)
	if err != nil {
		return err
	}
	if n == 0 {
		return fmt.Errorf("%q: want at least 1 byte", v)
	}
	*s = Size(n)
	return nil
}
