package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := dispatch(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "loadtest:", err)
		os.Exit(1)
	}
}

const usage = `loadtest: featured's load generator (and its peers').

Usage:
  go run ./loadtest run -target T -addr HOST:PORT [flags]   one run; -rate R: open loop, else closed loop
  go run ./loadtest suite -label L -target T -addr ... [flags] the compare matrix for one system (bench-compare)
  go run ./loadtest report -dir DIR -out FILE.md -chart FILE.svg  tables, ratios and chart from result files
  go run ./loadtest defs -variant last|window                 featured definitions of the workload (YAML)
  go run ./loadtest load -target featured|redis -addr HOST:PORT  load every entity's values
  go run ./loadtest trivial -addr HOST:PORT                   a server that answers a fixed body (generator baseline)
  go run ./loadtest soak -binary ./featured -kafka-brokers B   kill -9, full disks and hostile input; counts lost and doubled events

Targets: feast-http, native-http, grpc, redis-hmget, redis-hgetall, push, trivial-http.
Run 'go run ./loadtest COMMAND -h' for a command's flags.
`

func dispatch(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errors.New("no command")
	}
	switch args[0] {
	case "run":
		return runCmd(ctx, args[1:], stdout, stderr)
	case "suite":
		return suiteCmd(ctx, args[1:], stdout, stderr)
	case "report":
		return reportCmd(args[1:], stdout, stderr)
	case "defs":
		return defsCmd(args[1:], stdout, stderr)
	case "load":
		return loadCmd(ctx, args[1:], stdout, stderr)
	case "trivial":
		return trivialCmd(ctx, args[1:], stdout, stderr)
	case "soak":
		return soakCmd(ctx, args[1:], stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("unknown command %q", args[0])
}

// pidList is a comma-separated list of process IDs.
type pidList []int

func (p *pidList) String() string {
	s := make([]string, len(*p))
	for i, v := range *p {
		s[i] = strconv.Itoa(v)
	}
	return strings.Join(s, ",")
}

func (p *pidList) Set(v string) error {
	*p = (*p)[:0]
	for _, f := range strings.Split(v, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil || n <= 0 {
			return fmt.Errorf("%q is not a process id", f)
		}
		*p = append(*p, n)
	}
	return nil
}

// runFlags binds the flags shared by run and suite to o.
func runFlags(fs *flag.FlagSet, o *Options) {
	fs.StringVar(&o.Label, "label", "", "name of the system under test in results (default: the target)")
	fs.StringVar(&o.Target, "target", "", "feast-http, native-http, grpc, redis-hmget, redis-hgetall, push or trivial-http")
	fs.StringVar(&o.Addr, "addr", "", "the system's host:port, or a comma-separated list: a cluster's nodes, connections spread over them in turn")
	fs.IntVar(&o.Workload.Entities, "entities", 1, "entity rows per request")
	fs.IntVar(&o.Workload.Features, "features", 50, "features per request: the service of the first 50/100/150/200/250")
	fs.IntVar(&o.Workload.Unique, "unique", 1000, "distinct pre-built requests, sent in turn")
	fs.Uint64Var(&o.Workload.Seed, "seed", 1, "seed of the requests' entity keys")
	fs.IntVar(&o.Workload.PushEvents, "push-events", 100, "events per push (target push)")
	fs.IntVar(&o.Workload.Keyspace, "keyspace", Keyspace, "entity keys are drawn from [0, keyspace)")
	fs.IntVar(&o.Connections, "conns", 16, "connections (one worker each)")
	fs.IntVar(&o.GRPCConns, "grpc-conns", 2, "gRPC client connections shared by the workers")
	fs.DurationVar(&o.Warmup, "warmup", 2*time.Second, "unrecorded load before the measurement (negative: none)")
	fs.DurationVar(&o.Duration, "duration", 10*time.Second, "measured time")
	fs.DurationVar(&o.Drain, "drain", 2*time.Second, "open loop: how long after the end queued requests may still be sent")
	fs.DurationVar(&o.Timeout, "timeout", 10*time.Second, "per-request deadline")
	fs.BoolVar(&o.NoVerify, "no-verify", false, "skip checking one answer's values before the run")
	fs.Var((*pidList)(&o.ServerPIDs), "pids", "comma-separated server process IDs whose CPU time to measure")
}

func runCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o Options
	runFlags(fs, &o)
	fs.Float64Var(&o.Rate, "rate", 0, "offered requests per second (open loop); 0: closed loop")
	out := fs.String("out", "", "write the JSON result here")
	quiet := fs.Bool("quiet", false, "no progress lines")
	fs.StringVar(&o.Phase, "phase", "", "phase name copied into the result")
	cpuProfile := fs.String("cpuprofile", "", "write the generator's own CPU profile here")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	if !*quiet {
		o.Progress = stderr
	}
	res, err := Run(ctx, o)
	if err != nil && res == nil {
		return err
	}
	fmt.Fprintln(stdout, res.Summary())
	if *out != "" {
		if werr := res.WriteFile(*out); werr != nil {
			return werr
		}
	}
	return err
}

func defsCmd(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("defs", flag.ContinueOnError)
	fs.SetOutput(stderr)
	variant := fs.String("variant", "last", "last (plain values) or window (sums over 1d)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	defs, err := Definitions(*variant)
	if err != nil {
		return err
	}
	_, err = io.WriteString(stdout, defs)
	return err
}

func loadCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("load", flag.ContinueOnError)
	fs.SetOutput(stderr)
	target := fs.String("target", "", "featured (push over HTTP) or redis")
	addr := fs.String("addr", "", "host:port")
	batch := fs.Int("batch", 0, "entities per push or pipeline (default 500 for featured, 200 for redis)")
	keyspace := fs.Int("keyspace", Keyspace, "load entities 0..keyspace-1")
	atomic := fs.Bool("atomic", true, "featured: each push all-or-nothing (in cluster mode a Kafka transaction)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *addr == "" {
		return errors.New("load: -addr: missing")
	}
	start := time.Now()
	var n int
	var err error
	switch *target {
	case "featured":
		n, err = loadFeatured(ctx, *addr, orDefault(*batch, 500), *keyspace, *atomic, time.Now())
	case "redis":
		n, err = loadRedis(*addr, orDefault(*batch, 200), *keyspace)
	default:
		return fmt.Errorf("load: -target: %q is not featured or redis", *target)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "loaded %d entities x %d features into %s at %s in %.1fs\n", n, MaxFeatures, *target, *addr, time.Since(start).Seconds())
	return nil
}

// orDefault returns v, or def when v is zero.
func orDefault(v, def int) int {
	if v == 0 {
		return def
	}
	return v
}

func trivialCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("trivial", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:7070", "listen address")
	entities := fs.Int("entities", 1, "entity rows in the fixed answer")
	features := fs.Int("features", 50, "features in the fixed answer")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	body := trivialResponse(*entities, *features)
	fmt.Fprintf(stdout, "trivial server on %s, %d-byte answers (pid %d)\n", ln.Addr(), len(body), os.Getpid())
	return serveTrivial(ctx, ln, body)
}
