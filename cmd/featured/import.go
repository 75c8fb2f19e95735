package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/featured-dev/featured/backup"
	"github.com/featured-dev/featured/feastimport"
)

// importCmd is `featured import feast REGISTRY [--project P] [-o FILE]`: it
// reads a Feast registry file (a path, file:// or s3://) and writes the
// featured definitions to stdout or FILE. What does not map goes to stderr
// and, as comments, to the top of the document; the summary line to stderr.
// It talks to no server: `featured plan -f FILE` and `apply` take the
// output as is.
func importCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "feast" {
		return errors.New("import: want `featured import feast REGISTRY [--project P] [-o FILE]`")
	}
	fs := flag.NewFlagSet("import feast", flag.ContinueOnError)
	fs.SetOutput(stderr)
	project := fs.String("project", "", "the Feast project to import (default: the registry's only project)")
	out := fs.String("o", "", "write the definitions to this file (default: stdout)")
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	var srcs []string
	// Flags may follow REGISTRY too.
	for fs.NArg() > 0 {
		srcs = append(srcs, fs.Arg(0))
		if err := fs.Parse(fs.Args()[1:]); err != nil {
			return err
		}
	}
	if len(srcs) != 1 {
		return errors.New("import feast: want one REGISTRY (a path, file:///path or s3://bucket/key, e.g. data/registry.db)")
	}
	reg, err := backup.ReadObject(ctx, srcs[0])
	if err != nil {
		return fmt.Errorf("import feast: %w", err)
	}
	res, err := feastimport.Convert(reg, feastimport.Options{Project: *project})
	if err != nil {
		return fmt.Errorf("import feast %s: %w", srcs[0], err)
	}
	for _, u := range res.Unmapped {
		fmt.Fprintf(stderr, "not imported: %s\n", u)
	}
	if *out == "" {
		if _, err := stdout.Write(res.YAML); err != nil {
			return err
		}
	} else if err := os.WriteFile(*out, res.YAML, 0o644); err != nil {
		return fmt.Errorf("import feast: %w", err)
	}
	fmt.Fprintf(stderr, "imported Feast project %s: %d entities, %d sources, %d feature views, %d feature services; %d items not imported (listed above and in the document)\n",
		res.Project, res.Entities, res.Sources, res.Views, res.Services, len(res.Unmapped))
	return nil
}
