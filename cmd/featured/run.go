package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

const usage = `featured: an online feature store.

Usage:
  featured serve [flags]                 run the server (no flags: local data dir, push ingest)
  featured apply -f defs.yaml [--backfill]
                                         apply definitions (entities, sources, views, services);
                                         --backfill: then build each view version it creates
                                         from the offline log
  featured plan -f defs.yaml             show what apply would change, change nothing
  featured delete KIND NAME [--version N]  delete a view (version), source, entity or service
  featured get --features a:b,c:d | --service S --entity user_id=u1[,u2] [--feast | --grpc ADDR]
  featured push --source S -f events.json  push a JSON array of events
  featured export --spine F --features a:b,c@v1:d | --service S --out OUT.parquet
                                         point-in-time training set from the offline log
  featured backfill VIEW[@vN]            build a view version's online state from the offline log
  featured verify-skew                   recompute sampled online answers offline; report the match rate
  featured backup [DEST]                 a consistent backup of the server (--server) to DEST
                                         (a directory, file:///path or s3://bucket/prefix;
                                         default the server's --backup-dest)
  featured backup list DEST              the backups DEST holds
  featured restore --data-dir DIR SRC    lay a backup (--backup ID, default the newest) into an
                                         empty data dir
  featured migrate-store --data-dir DIR --partitions P
                                         rewrite a stopped server's store of the layout before
                                         partitions (store/SHARDS) into P partitions
  featured registry                      print the registry
  featured status                        print ingest and store status
  featured cluster status | drain        the cluster's owner map; drain this node, then leave
  featured token --name N --scopes read[,write,admin] [--views a,b] [--services s]
                                         make a random token; print it and its --auth-file entry
  featured import feast REGISTRY [--project P] [-o FILE]
                                         definitions from a Feast registry file (data/registry.db;
                                         a path, file:///path or s3://bucket/key); what does not
                                         map is listed with the reason
  featured version

Client commands send the bearer token of FEATURED_TOKEN or --token-file, and
trust the system roots plus --ca-file for an https:// --server.

Every flag can also be set by the environment: --data-dir is FEATURED_DATA_DIR.
Quick commands give up after 60s; export, backfill, verify-skew and apply --backfill
wait as long as the server works (--timeout D to bound export, backfill, verify-skew).
Run 'featured COMMAND -h' for a command's flags.
`

// run is main without the process: tests call it with their own arguments
// and cancel ctx to stop a server.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	err := dispatch(ctx, args, stdout, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil // -h printed the command's flags
	}
	return err
}

func dispatch(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errors.New("no command")
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "serve":
		return serve(ctx, rest, stderr)
	case "apply", "plan":
		return applyCmd(ctx, cmd, rest, stdout, stderr)
	case "delete":
		return deleteCmd(ctx, rest, stdout, stderr)
	case "get":
		return getCmd(ctx, rest, stdout, stderr)
	case "push":
		return pushCmd(ctx, rest, stdout, stderr)
	case "export":
		return exportCmd(ctx, rest, stdout, stderr)
	case "backfill":
		return backfillCmd(ctx, rest, stdout, stderr)
	case "verify-skew":
		return verifySkewCmd(ctx, rest, stdout, stderr)
	case "backup":
		return backupCmd(ctx, rest, stdout, stderr)
	case "restore":
		return restoreCmd(ctx, rest, stdout, stderr)
	case "migrate-store":
		return migrateStoreCmd(ctx, rest, stdout, stderr)
	case "cluster":
		return clusterCmd(ctx, rest, stdout, stderr)
	case "registry", "status":
		return showCmd(ctx, cmd, rest, stdout, stderr)
	case "token":
		return tokenCmd(rest, stdout, stderr)
	case "import":
		return importCmd(ctx, rest, stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, "featured", version)
		return nil
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("unknown command %q", cmd)
}

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// parseFlags parses args into fs, then fills every flag not given on the
// command line from FEATURED_<NAME> (dashes become underscores).
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] {
			return
		}
		env := envName(f.Name)
		if v, ok := os.LookupEnv(env); ok {
			if err := f.Value.Set(v); err != nil {
				errs = append(errs, fmt.Errorf("%s=%q: %w", env, v, err))
			}
		}
	})
	return errors.Join(errs...)
}

func envName(flagName string) string {
	return "FEATURED_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}
