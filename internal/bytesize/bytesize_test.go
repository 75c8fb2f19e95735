package bytesize

import (
	"flag"
	"io"
	"math"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	ok := func(in string, want int64) {
		t.Helper()
		got, err := Parse(in)
		if err != nil || got != want {
			t.Errorf("Parse(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	bad := func(in, wantErr string) {
		t.Helper()
		got, err := Parse(in)
		if err == nil || !strings.Contains(err.Error(), wantErr) {
			t.Errorf("Parse(%q) = %d, %v; want an error saying %q", in, got, err, wantErr)
		}
	}
	ok("0", 0)
	ok("1000", 1000)
	ok("1KiB", 1024)
	ok("512MiB", 512<<20)
	ok("2GiB", 2<<30)
	ok("3mib", 3<<20)
	ok("0KiB", 0)
	ok("007KiB", 7<<10)
	ok("8589934591GiB", 8589934591<<30)
	bad("", "not a size")
	bad("MiB", "not a size")
	bad("-1", "not a size")
	bad("+1", "not a size")
	bad("1.5GiB", "not a size")
	bad("1 MiB", "not a size")
	bad("12XB", "not a size")
	bad("lots", "not a size")
	bad("512MB", "MB is ambiguous")
	bad("4k", "k is ambiguous")
	bad("1G", "G is ambiguous")
	bad("8589934592GiB", "more bytes than fit")
	bad("99999999999999999999", "more bytes than fit")
}

func TestFormat(t *testing.T) {
	f := func(n int64, want string) {
		t.Helper()
		if got := Format(n); got != want {
			t.Errorf("Format(%d) = %q, want %q", n, got, want)
		}
		if back, err := Parse(want); err != nil || back != n {
			t.Errorf("Parse(Format(%d)) = %d, %v", n, back, err)
		}
	}
	f(0, "0")
	f(1000, "1000")
	f(1024, "1KiB")
	f(1536, "1536")
	f(1536<<10, "1536KiB")
	f(512<<20, "512MiB")
	f(3<<30, "3GiB")
	f(math.MaxInt64, "9223372036854775807")
}

// TestSizeFlag: a Size flag parses sizes, names itself in errors, refuses
// zero, and prints its default in the flag's usage.
func TestSizeFlag(t *testing.T) {
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	s := Size(512 << 20)
	fs.Var(&s, "mem", "memory")
	if err := fs.Parse([]string{"--mem", "1KiB"}); err != nil || s != 1024 {
		t.Fatalf("--mem 1KiB: %d, %v", s, err)
	}
	for _, v := range []string{"0", "12XB"} {
		if err := fs.Parse([]string{"--mem", v}); err == nil || !strings.Contains(err.Error(), "-mem") {
			t.Errorf("--mem %s: %v, want an error naming the flag", v, err)
		}
	}
	var usage strings.Builder
	fs.SetOutput(&usage)
	s = 512 << 20
	fs.PrintDefaults()
	if !strings.Contains(usage.String(), "(default 512MiB)") {
		t.Errorf("usage %q does not show the default", usage.String())
	}
}
