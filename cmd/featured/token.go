package main

import (
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/featured-dev/featured/internal/auth"
)

// tokenCmd is `featured token`: a random token and its --auth-file entry.
// Only the entry's digest goes in the file; the token is printed once.
func tokenCmd(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("token", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var e auth.Entry
	fs.StringVar(&e.Name, "name", "", "the caller's name (audit lines, history, errors)")
	scopes := fs.String("scopes", "read", "comma-separated scopes: read, write, admin")
	views := fs.String("views", "", "comma-separated views read is limited to (empty: every view)")
	services := fs.String("services", "", "comma-separated feature services read is limited to")
	fs.Float64Var(&e.Rate, "rate", 0, "requests per second (0: unlimited)")
	fs.IntVar(&e.Burst, "burst", 0, "rate bucket size (0: the rate rounded up)")
	fs.IntVar(&e.Concurrency, "concurrency", 0, "requests in flight at once (0: unlimited)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	split := func(s string) []string {
		if s == "" {
			return nil
		}
		return strings.Split(s, ",")
	}
	e.Scopes, e.Views, e.Services = split(*scopes), split(*views), split(*services)
	token, digest, err := auth.NewToken()
	if err != nil {
		return err
	}
	e.SHA256 = digest
	// The entry must load: check it as the server will.
	if _, err := auth.ParseFile([]byte("tokens:\n" + auth.EntryYAML(e))); err != nil {
		return fmt.Errorf("token: %w", err)
	}
	fmt.Fprintf(stdout, "token: %s\n# Give the token to the caller (FEATURED_TOKEN or --token-file); it is shown only now.\n# Add this entry under tokens: in the --auth-file (the server reloads it within seconds):\n%s", token, auth.EntryYAML(e))
	return nil
}
