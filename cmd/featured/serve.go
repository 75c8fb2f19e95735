package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/featured-dev/featured/aggregate"
	"github.com/featured-dev/featured/cluster/replicas"
	"github.com/featured-dev/featured/featurestore"
	"github.com/featured-dev/featured/ingest"
	"github.com/featured-dev/featured/internal/auth"
	"github.com/featured-dev/featured/internal/bytesize"
	"github.com/featured-dev/featured/internal/certs"
	"github.com/featured-dev/featured/internal/diskguard"
	"github.com/featured-dev/featured/internal/telemetry"
	"github.com/featured-dev/featured/offline"
	"github.com/featured-dev/featured/offline/eventlog"
	"github.com/featured-dev/featured/offline/export"
	"github.com/featured-dev/featured/offline/skew"
	"github.com/featured-dev/featured/registry"
	"github.com/featured-dev/featured/serving"
)

// serveConfig is everything `featured serve` reads from flags and the
// environment. docs/config.md lists it; keep the two in step.
type serveConfig struct {
	dataDir         string
	httpAddr        string
	grpcAddr        string
	kafkaBrokers    string
	partitions      int
	cacheMB         int64
	writerCache     bytesize.Size
	minFreeDisk     bytesize.Size
	commitInterval  time.Duration
	gcInterval      time.Duration
	dedupeWindow    time.Duration
	maxFutureSkew   time.Duration
	maxEntities     int
	maxBodyBytes    int64
	maxPushEvents   int
	logLevel        string
	logFormat       string
	shutdownTimeout time.Duration
	applyFile       string
	offlineRetain   time.Duration
	backupDest      string
	backupInterval  time.Duration
	backupKeep      int
	skewEvery       int
	skewSamples     int
	pprofAddr       string
	pprofOnHTTP     bool
	exportMemory    bytesize.Size
	exportTempDir   string

	// Bounded cost of a request (docs/config.md "Limits").
	maxCells           int
	maxResponseBytes   bytesize.Size
	maxLookups         int
	maxPushes          int
	maxRegistryChanges int
	maxExports         int
	maxBackfills       int
	shedWait           time.Duration
	bodyTimeout        time.Duration
	spineBodyTimeout   time.Duration
	writeTimeout       time.Duration
	readHeaderTimeout  time.Duration
	idleTimeout        time.Duration
	resetDataDir       bool

	// Telemetry (docs/config.md "Metrics and tracing").
	metricsAddr      string
	otlpEndpoint     string
	traceSampleRatio float64
	kafkaGroupPrefix string
	// Security (docs/config.md "Security").
	authFile             string
	metricsTokenRequired bool
	insecure             bool
	tlsCert, tlsKey      string
	tlsClientCA          string
	// Cluster mode (cluster.go).
	cluster clusterConfig
}

// removedShardsFlag refuses --shards (and FEATURED_SHARDS) instead of
// letting it be unknown: a deployment that still sets the variable would
// otherwise start, silently, a store of the default partition count.
func removedShardsFlag(string) error {
	return errors.New("--shards is gone: the store is partitioned like its Kafka topics; set --partitions (FEATURED_PARTITIONS) " +
		"to the topics' partition count, and migrate a data dir of the old layout once with featured migrate-store")
}

func serveFlags(fs *flag.FlagSet) *serveConfig {
	c := &serveConfig{}
	fs.StringVar(&c.dataDir, "data-dir", "featured-data", "directory for the registry and the store")
	fs.StringVar(&c.httpAddr, "http-addr", "127.0.0.1:8080", "HTTP listen address")
	fs.StringVar(&c.grpcAddr, "grpc-addr", "127.0.0.1:9090", "gRPC listen address")
	fs.StringVar(&c.kafkaBrokers, "kafka-brokers", "", "comma-separated Kafka bootstrap brokers; empty: push ingest only")
	fs.IntVar(&c.partitions, "partitions", 16, "partitions of the store, one Pebble each: every Kafka source topic must have as many (fixed when the data dir is created)")
	fs.Func("shards", "removed: see --partitions", removedShardsFlag)
	fs.Int64Var(&c.cacheMB, "cache-mb", 256, "block cache shared by the partitions, MiB")
	c.writerCache = 256 << 20
	fs.Var(&c.writerCache, "writer-cache", "memory of the decoded states the shard writers keep (bytes, KiB, MiB or GiB), split over the shards")
	fs.Var(&c.minFreeDisk, "min-free-disk", "free space under --data-dir below which pushes, applies and Kafka ingest pause (a size); 0: 5% of the volume, at most 1GiB")
	fs.DurationVar(&c.commitInterval, "commit-interval", 10*time.Millisecond, "longest a Kafka event waits for its shard's commit")
	fs.DurationVar(&c.gcInterval, "gc-interval", time.Minute, "pause between TTL scans of the store")
	fs.DurationVar(&c.dedupeWindow, "push-dedupe-window", 24*time.Hour, "how long a push's batch_id is remembered, so that a retry of it is applied once")
	fs.DurationVar(&c.maxFutureSkew, "max-future-skew", 15*time.Minute, "how far past the clock an event time may be")
	fs.IntVar(&c.maxEntities, "max-entities", serving.DefaultMaxEntities, "most entities in one lookup")
	fs.Int64Var(&c.maxBodyBytes, "max-body-bytes", serving.DefaultMaxBodyBytes, "largest HTTP request body")
	fs.IntVar(&c.maxPushEvents, "max-push-events", 10000, "most events in one push")
	fs.StringVar(&c.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&c.logFormat, "log-format", "text", "text or json")
	fs.DurationVar(&c.shutdownTimeout, "shutdown-timeout", 30*time.Second, "longest a graceful shutdown waits for in-flight requests")
	fs.StringVar(&c.applyFile, "apply", "", "definitions file to apply at startup (optional)")
	fs.StringVar(&c.pprofAddr, "pprof-addr", "", "serve net/http/pprof on this address (e.g. 127.0.0.1:6060); empty: off")
	fs.BoolVar(&c.pprofOnHTTP, "pprof-on-http", false, "also serve net/http/pprof under /debug/pprof/ on --http-addr, behind the API's middleware")
	fs.StringVar(&c.backupDest, "backup-dest", "", "where backups go: a directory, file:///path or s3://bucket/prefix[?endpoint=URL&use_path_style=true&region=R] (credentials from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY); the default of POST /v1/backup and the destination of scheduled backups")
	fs.DurationVar(&c.backupInterval, "backup-interval", 0, "take a backup to --backup-dest this often (0: only when asked, by featured backup)")
	fs.IntVar(&c.backupKeep, "backup-keep", 7, "after each backup to --backup-dest, delete all but the newest this many there, and the files no kept backup needs (0 keeps all)")
	fs.DurationVar(&c.offlineRetain, "offline-retention", 30*24*time.Hour, "how long the offline log keeps events (by ingest day), independent of view TTLs; negative keeps all")
	fs.IntVar(&c.skewEvery, "skew-sample-every", 100, "keep one lookup read in N for verify-skew; 0: none")
	fs.IntVar(&c.skewSamples, "skew-samples", 10000, "how many sampled reads verify-skew keeps (the latest)")
	c.exportMemory = export.DefaultMemoryBytes
	fs.Var(&c.exportMemory, "export-memory", "working set of one export (bytes, KiB, MiB or GiB); bigger exports spill to disk; a request's ?memory= may lower it, not raise it")
	fs.StringVar(&c.exportTempDir, "export-temp-dir", "", "existing directory for exports' spill files, uploaded spines and verify-skew's scratch files; empty: the OS temp dir")
	fs.IntVar(&c.maxCells, "max-cells", serving.DefaultMaxCells, "most values one lookup returns: entity rows x features, a last_k feature counting k")
	c.maxResponseBytes = serving.DefaultMaxResponseBytes
	fs.Var(&c.maxResponseBytes, "max-response-bytes", "largest lookup response (bytes, KiB, MiB or GiB)")
	fs.IntVar(&c.maxLookups, "max-lookups", serving.DefaultMaxLookups, "lookups served at once; more wait --shed-wait, then get 503 / RESOURCE_EXHAUSTED")
	fs.IntVar(&c.maxPushes, "max-pushes", serving.DefaultMaxPushes, "pushes served at once")
	fs.IntVar(&c.maxRegistryChanges, "max-registry-changes", serving.DefaultMaxRegistryChange, "applies, plans and deletes served at once")
	fs.IntVar(&c.maxExports, "max-exports", serving.DefaultMaxExports, "exports run at once")
	fs.IntVar(&c.maxBackfills, "max-backfills", serving.DefaultMaxBackfills, "backfills and verify-skews run at once")
	fs.DurationVar(&c.shedWait, "shed-wait", serving.DefaultShedWait, "how long a request waits for a free slot of its class before it is refused")
	fs.DurationVar(&c.bodyTimeout, "body-timeout", serving.DefaultBodyTimeout, "longest an HTTP request body may take to arrive (408 beyond)")
	fs.DurationVar(&c.spineBodyTimeout, "spine-body-timeout", serving.DefaultSpineBodyTimeout, "longest an export or verify-skew spine upload may take")
	fs.DurationVar(&c.writeTimeout, "write-timeout", serving.DefaultWriteTimeout, "longest a lookup, push or registry response may take (exports and backfills have none)")
	fs.DurationVar(&c.readHeaderTimeout, "read-header-timeout", 10*time.Second, "longest a client may take to send a request's headers")
	fs.DurationVar(&c.idleTimeout, "idle-timeout", 2*time.Minute, "how long an idle kept-alive HTTP connection stays open")
	fs.BoolVar(&c.resetDataDir, "reset-data-dir", false, "when the data dir is damaged (registry.json, the store's SHARDS or a shard missing), delete the store and the offline log and start with no state instead of refusing to start")
	fs.StringVar(&c.metricsAddr, "metrics-addr", "", "serve Prometheus metrics on GET /metrics at this address; empty: on --http-addr")
	fs.StringVar(&c.otlpEndpoint, "otlp-endpoint", "", "also push metrics, and spans when --trace-sample-ratio > 0, to this OTLP gRPC collector (host:port, no TLS); empty: no OTLP")
	fs.Float64Var(&c.traceSampleRatio, "trace-sample-ratio", 0, "fraction of traces started here that are recorded (a sampled caller's trace always is); needs --otlp-endpoint; 0: no tracing")
	fs.StringVar(&c.kafkaGroupPrefix, "kafka-commit-group", "featured-", "commit each Kafka source's applied offsets to the consumer group <this><source>, for lag tools only (featured keeps its offsets in the store); empty: off")
	fs.StringVar(&c.authFile, "auth-file", "", "token file (YAML: tokens with sha256, scopes, views, limits); empty: no auth, loopback addresses only")
	fs.BoolVar(&c.metricsTokenRequired, "metrics-token-required", false, "with --auth-file: GET /metrics needs a valid token too")
	fs.BoolVar(&c.insecure, "insecure", false, "allow non-loopback listen addresses without --auth-file, and a non-loopback --pprof-addr")
	fs.StringVar(&c.tlsCert, "tls-cert", "", "PEM certificate (chain) for HTTP and gRPC; reloaded when it changes")
	fs.StringVar(&c.tlsKey, "tls-key", "", "PEM private key of --tls-cert")
	fs.StringVar(&c.tlsClientCA, "tls-client-ca", "", "PEM CA of client certificates; a verified certificate's subject may stand for a token (subject: in --auth-file)")
	clusterFlags(fs, &c.cluster)
	return c
}

// isLoopback reports whether a listen address binds only the loopback
// interface: an IP that is loopback, or localhost. "" and 0.0.0.0 bind
// every interface.
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// checkOpenDoor refuses a configuration that would serve the API to the
// network without authentication, or pprof (which has no auth on its own
// listener) beyond loopback, unless --insecure says so; then it logs it
// loudly.
func checkOpenDoor(c *serveConfig, log *slog.Logger) error {
	addrs := []struct{ flag, addr string }{{"--http-addr", c.httpAddr}, {"--grpc-addr", c.grpcAddr}}
	for _, a := range addrs {
		if c.authFile != "" || isLoopback(a.addr) {
			continue
		}
		if !c.insecure {
			return fmt.Errorf("%s %s is not a loopback address and --auth-file is not set: anyone who reaches it could read, push, apply and delete; set --auth-file, or --insecure to serve without auth", a.flag, a.addr)
		}
		log.Warn("INSECURE: serving without authentication on a non-loopback address (--insecure); anyone who reaches it may read, push, apply and delete", "flag", a.flag, "addr", a.addr)
	}
	if c.pprofAddr != "" && !isLoopback(c.pprofAddr) {
		if !c.insecure {
			return fmt.Errorf("--pprof-addr %s is not a loopback address: profiles have no auth on their own listener; use a loopback address, --pprof-on-http (admin scope), or --insecure", c.pprofAddr)
		}
		log.Warn("INSECURE: pprof without authentication on a non-loopback address (--insecure)", "addr", c.pprofAddr)
	}
	if (c.tlsCert == "") != (c.tlsKey == "") {
		return errors.New("--tls-cert and --tls-key go together")
	}
	if c.tlsClientCA != "" && c.tlsCert == "" {
		return errors.New("--tls-client-ca needs --tls-cert and --tls-key")
	}
	return nil
}

func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level: %q is not debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format: %q is not text or json", format)
}

// serve runs the server until ctx ends, then shuts down in the reverse
// order of startup: stop taking requests and finish in-flight ones, stop
// Kafka consumers, flush and close the store.
func serve(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	c := serveFlags(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	log, err := newLogger(stderr, c.logLevel, c.logFormat)
	if err != nil {
		return err
	}
	if err := checkOpenDoor(c, log); err != nil {
		return err
	}
	if err := c.cluster.check(c); err != nil {
		return err
	}
	var keyring *auth.Keyring
	if c.authFile != "" {
		if keyring, err = auth.Open(c.authFile, auth.Options{Logger: log}); err != nil {
			return fmt.Errorf("--auth-file: %w", err)
		}
		log.Info("auth on", "file", c.authFile, "entries", keyring.Len())
	}
	var tlsConfig *tls.Config
	var certReloader *certs.Reloader
	if c.tlsCert != "" {
		rl, err := certs.NewReloader(c.tlsCert, c.tlsKey, certs.Options{Logger: log})
		if err != nil {
			return fmt.Errorf("--tls-cert: %w", err)
		}
		if tlsConfig, err = certs.ServerConfig(rl, c.tlsClientCA); err != nil {
			return fmt.Errorf("--tls-client-ca: %w", err)
		}
		certReloader = rl
	}
	if err := checkDir(c.exportTempDir); err != nil {
		return fmt.Errorf("--export-temp-dir: %w", err)
	}

	tel, err := telemetry.New(ctx, telemetry.Options{OTLPEndpoint: c.otlpEndpoint, TraceSampleRatio: c.traceSampleRatio})
	if err != nil {
		return err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := tel.Shutdown(sctx); err != nil {
			log.Warn("telemetry shutdown", "err", err)
		}
	}()

	paths := dataDirLayout(c.dataDir)
	if err := prepareDataDir(paths, c.partitions, c.resetDataDir, log); err != nil {
		return err
	}
	if err := os.MkdirAll(c.dataDir, 0o755); err != nil {
		return fmt.Errorf("--data-dir: %w", err)
	}
	if err := removeStaging(c.dataDir); err != nil {
		return fmt.Errorf("--data-dir: remove an unfinished backup's checkpoint: %w", err)
	}
	disk, err := diskguard.New(c.dataDir, diskguard.Options{MinFreeBytes: int64(c.minFreeDisk), Logger: log})
	if err != nil {
		return fmt.Errorf("--data-dir: %w", err)
	}
	diskCtx, stopDisk := context.WithCancel(context.Background())
	var diskDone sync.WaitGroup
	diskDone.Go(func() { disk.Run(diskCtx) })
	defer diskDone.Wait()
	defer stopDisk()
	reg, err := registry.Open(paths.registry)
	if err != nil {
		return err
	}
	views := &liveViews{reg: reg}
	olog, err := eventlog.Open(paths.offline, eventlog.Options{Retention: c.offlineRetain, Logger: log})
	if err != nil {
		return err
	}
	defer func() {
		if err := olog.Close(); err != nil {
			log.Error("close offline log", "err", err)
		}
	}()
	var sampler *skew.Sampler
	var sampleFn func(featurestore.ViewKey, []byte, []int, int64, []aggregate.Result)
	if c.skewEvery > 0 {
		sampler = skew.NewSampler(c.skewSamples)
		sampleFn = sampler.Record
	}
	store, err := featurestore.Open(paths.store, featurestore.Options{
		EventLog:         olog,
		ReadSampler:      sampleFn,
		ReadSampleEvery:  c.skewEvery,
		Partitions:       c.partitions,
		CacheBytes:       c.cacheMB << 20,
		CachedStateBytes: int64(c.writerCache),
		CommitInterval:   c.commitInterval,
		GCInterval:       c.gcInterval,
		DedupeWindow:     c.dedupeWindow,
		PruneSlack:       max(time.Hour, c.maxFutureSkew),
		Views:            views.lookup,
		Layouts:          layoutsOf(reg),
		Logger:           log,
		CommitFailed:     func(_ int, err error) { disk.Observe(err) },
		Committed:        tel.StoreCommitted,
	})
	if err != nil {
		return err
	}
	defer func() {
		if err := store.Close(); err != nil {
			log.Error("close store", "err", err)
		}
	}()
	// Definitions are applied once the store exists: a registry with
	// definitions and no store is a damaged data dir (checkDataDir).
	if c.applyFile != "" {
		if err := applyAtStartup(reg, c.applyFile, log); err != nil {
			return err
		}
	}
	if err := tel.ObserveStore(store); err != nil {
		return err
	}
	ingestOpts := ingest.Options{MaxBatch: c.maxPushEvents, MaxFutureSkew: c.maxFutureSkew, Logger: log, Writable: disk.Check,
		PushBatch: tel.PushBatch, Applied: tel.IngestApplied, Tracer: tel.IngestTracer()}
	// nil: every partition, all committed to the lag groups (a single node)
	var partitionSet, activeSet *ingest.PartitionSet
	if c.cluster.group != "" {
		partitionSet, activeSet = ingest.NewPartitionSet(), ingest.NewPartitionSet()
		ingestOpts.Cluster = clusterPushOptions(c, store.Partitions())
	}
	pusher, err := ingest.NewPusher(reg, store, ingestOpts)
	if err != nil {
		return err
	}
	defer pusher.Close()
	var kafkaIngest *ingest.Kafka
	if c.kafkaBrokers != "" {
		kafkaIngest, err = ingest.NewKafka(reg, store, ingest.KafkaOptions{Options: ingestOpts, Brokers: strings.Split(c.kafkaBrokers, ","),
			GroupPrefix: c.kafkaGroupPrefix, Partitions: partitionSet, GroupPartitions: activeSet})
		if err != nil {
			return err
		}
	}
	var node *clusterNode
	if c.cluster.group != "" {
		var h replicas.Handover
		if c.cluster.checkpointDest != "" {
			h = newHandover(store, c.dataDir, c.cluster.checkpointDest, c.cluster.checkpointKeep)
			log.Info("cluster: partitions hand over through checkpoints", "dest", redactURL(c.cluster.checkpointDest), "interval", c.cluster.checkpointInterval)
		}
		if node, err = newClusterNode(c.cluster, c.dataDir, store.Partitions(), partitionSet, activeSet, kafkaIngest, h, log); err != nil {
			return err
		}
	}
	if err := tel.ObserveIngest(reg, pusher, kafkaIngest); err != nil {
		return err
	}
	sopts := serving.Options{MaxEntities: c.maxEntities, MaxBodyBytes: c.maxBodyBytes, Logger: log, Version: version,
		MaxCells: c.maxCells, MaxResponseBytes: int(c.maxResponseBytes),
		MaxLookups: c.maxLookups, MaxPushes: c.maxPushes, MaxRegistryChanges: c.maxRegistryChanges,
		MaxExports: c.maxExports, MaxBackfills: c.maxBackfills, ShedWait: c.shedWait,
		BodyTimeout: c.bodyTimeout, SpineBodyTimeout: c.spineBodyTimeout, WriteTimeout: c.writeTimeout,
		// POST /v1/apply?backfill=true: the same backfill as POST /v1/backfill.
		Backfill: func(ctx context.Context, v *registry.View) (int, error) {
			return offline.Backfill(ctx, store, olog, v)
		},
	}
	exporter := export.NewExporter(reg, olog)
	hopts := offline.HandlerOptions{MemoryBytes: int64(c.exportMemory), TempDir: c.exportTempDir, Done: tel.OfflineDone, Tracer: tel.ExportTracer()}
	sopts.Offline = serving.OfflineRoutes{
		Export:     offline.ExportHandler(exporter, hopts),
		Backfill:   offline.BackfillHandler(exporter, store, hopts),
		VerifySkew: offline.VerifySkewHandler(exporter, sampler, hopts),
	}
	if node != nil {
		// A node's offline log holds only the partitions it has held: an
		// export, a skew check or a backfill there would silently miss the
		// others' entities. Refused until exports read every partition
		// (docs/scaling.md, "Writes and exports in a cluster").
		sopts.Backfill = nil
		sopts.Offline = serving.OfflineRoutes{Export: clusterRefused("export"), Backfill: clusterRefused("backfill"), VerifySkew: clusterRefused("verify-skew")}
	}
	backups := &backuper{dataDir: c.dataDir, store: store, reg: reg, olog: olog, log: log}
	sopts.Backup = backups.handler(c.backupDest, c.backupKeep)
	sopts.Pprof = c.pprofOnHTTP
	sopts.Middleware.Metrics = tel.HTTPMiddleware
	sopts.Observer = tel.LookupObserver()
	if keyring != nil {
		sopts.Middleware.Auth = serving.AuthMiddleware(keyring, serving.AuthOptions{MetricsTokenRequired: c.metricsTokenRequired})
		sopts.Interceptors.Auth = serving.AuthInterceptor(keyring)
	}
	sopts.Disk = disk
	sopts.OfflineLog = olog
	if kafkaIngest != nil {
		sopts.Kafka = kafkaIngest
		sopts.ReadyChecks = append(sopts.ReadyChecks, serving.Check{Name: "kafka", Check: kafkaIngest.Ready})
	}
	var srv *serving.Server
	if node != nil {
		sopts.Placement = node.keeper
		sopts.Cluster = node
		sopts.ForwardTimeout = c.cluster.forwardTimeout
		sopts.ReadyChecks = append(sopts.ReadyChecks, serving.Check{Name: "cluster", Check: node.keeper.Ready})
		if sopts.PeerDialOptions, err = peerDialOptions(c, certReloader); err != nil {
			return err
		}
		routerStats := func() serving.RouterStats {
			if srv == nil {
				return serving.RouterStats{}
			}
			return srv.RouterStats()
		}
		if sopts.ForwardObserver, err = tel.ObserveCluster(clusterMetrics{node.keeper}, routerStats); err != nil {
			return err
		}
		node.keeper.SetForwarding(func() any { return routerStats() })
	}
	srv, err = serving.New(reg, store, pusher, sopts)
	if err != nil {
		return err
	}
	defer srv.Close()

	httpLn, err := net.Listen("tcp", c.httpAddr)
	if err != nil {
		return fmt.Errorf("--http-addr: %w", err)
	}
	grpcLn, err := net.Listen("tcp", c.grpcAddr)
	if err != nil {
		httpLn.Close()
		return fmt.Errorf("--grpc-addr: %w", err)
	}
	var metricsSrv *http.Server
	if c.metricsAddr != "" {
		metricsLn, err := net.Listen("tcp", c.metricsAddr)
		if err != nil {
			httpLn.Close()
			grpcLn.Close()
			return fmt.Errorf("--metrics-addr: %w", err)
		}
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", tel.Handler())
		metricsSrv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		defer metricsSrv.Close()
		go func() { _ = metricsSrv.Serve(metricsLn) }() // stopped by the deferred Close
	}
	var pprofSrv *http.Server
	if c.pprofAddr != "" {
		pprofLn, err := net.Listen("tcp", c.pprofAddr)
		if err != nil {
			httpLn.Close()
			grpcLn.Close()
			return fmt.Errorf("--pprof-addr: %w", err)
		}
		pprofSrv = &http.Server{Handler: pprofMux(), ReadHeaderTimeout: 10 * time.Second}
		defer pprofSrv.Close()
		go func() { _ = pprofSrv.Serve(pprofLn) }() // stopped by the deferred Close
	}
	// No server-wide ReadTimeout or WriteTimeout: they would cut exports,
	// which stream for minutes. Each route sets its own deadlines
	// (serving.Server.Limit); ReadHeaderTimeout also resets them per request.
	handler := srv.HTTPHandler()
	if c.metricsAddr == "" {
		// /metrics beside the API, outside its middleware: scrapes are
		// not measured, and authenticated only with
		// --metrics-token-required (the Auth middleware decides).
		// A plain path check, not a ServeMux, which would clean and
		// redirect the API's paths.
		api, metrics := handler, tel.Handler()
		if keyring != nil {
			metrics = serving.AuthMiddleware(keyring, serving.AuthOptions{MetricsTokenRequired: c.metricsTokenRequired})(metrics)
		}
		handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/metrics" && r.Method == http.MethodGet {
				metrics.ServeHTTP(w, r)
				return
			}
			api.ServeHTTP(w, r)
		})
	}
	httpSrv := &http.Server{Handler: handler, ReadHeaderTimeout: c.readHeaderTimeout, IdleTimeout: c.idleTimeout}
	gopts := append(srv.GRPCServerOptions(), tel.GRPCServerOption())
	if tlsConfig != nil {
		httpLn = tls.NewListener(httpLn, tlsConfig)
		gopts = append(gopts, grpc.Creds(credentials.NewTLS(tlsConfig)))
	}
	grpcSrv := grpc.NewServer(gopts...)
	srv.RegisterGRPC(grpcSrv)

	kafkaCtx, stopKafka := context.WithCancel(context.Background())
	defer stopKafka()
	var wg sync.WaitGroup
	errc := make(chan error, 3)
	wg.Go(func() {
		if err := httpSrv.Serve(httpLn); !errors.Is(err, http.ErrServerClosed) {
			errc <- fmt.Errorf("http: %w", err)
		}
	})
	wg.Go(func() {
		if err := grpcSrv.Serve(grpcLn); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			errc <- fmt.Errorf("grpc: %w", err)
		}
	})
	var kafkaDone chan struct{}
	if kafkaIngest != nil {
		kafkaDone = make(chan struct{})
		go func() {
			defer close(kafkaDone)
			if err := kafkaIngest.Run(kafkaCtx); err != nil {
				log.Error("kafka ingest stopped", "err", err)
			}
		}()
	}
	backupCtx, stopBackups := context.WithCancel(context.Background())
	var backupsDone sync.WaitGroup
	defer backupsDone.Wait()
	defer stopBackups()
	if c.backupInterval > 0 && c.backupDest != "" {
		backupsDone.Go(func() { backups.schedule(backupCtx, c.backupDest, c.backupInterval, c.backupKeep) })
	}
	if node != nil {
		// Peers may forward to this node as soon as the map names it: the
		// listeners run already.
		if err := node.start(ctx, strings.Split(c.kafkaBrokers, ","), store.Partitions()); err != nil {
			srv.SetReady(false)
			httpSrv.Close()
			grpcSrv.Stop()
			wg.Wait()
			stopKafka()
			if kafkaDone != nil {
				<-kafkaDone
			}
			return err
		}
	}
	srv.SetReady(true)
	log.Info("featured serving", "http", httpLn.Addr().String(), "grpc", grpcLn.Addr().String(),
		"data_dir", c.dataDir, "partitions", store.Partitions(), "kafka", c.kafkaBrokers != "", "auth", keyring != nil, "tls", tlsConfig != nil)

	var runErr error
	select {
	case <-ctx.Done():
		log.Info("shutting down")
	case runErr = <-errc:
		log.Error("server failed; shutting down", "err", runErr)
	}
	srv.SetReady(false)
	shutdownCtx, cancel := context.WithTimeout(context.Background(), c.shutdownTimeout)
	defer cancel()
	if err := httpSrv.Shutdown(shutdownCtx); err != nil {
		log.Warn("http shutdown", "err", err)
	}
	grpcStopped := make(chan struct{})
	go func() { grpcSrv.GracefulStop(); close(grpcStopped) }()
	select {
	case <-grpcStopped:
	case <-shutdownCtx.Done():
		grpcSrv.Stop()
	}
	wg.Wait()
	if node != nil {
		node.close()
	}
	stopKafka()
	if kafkaDone != nil {
		<-kafkaDone
	}
	return runErr
}

// checkDir fails unless dir is empty (meaning the OS temp dir) or an
// existing directory.
func checkDir(dir string) error {
	if dir == "" {
		return nil
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s is not a directory", dir)
	}
	return nil
}

func applyAtStartup(reg *registry.Registry, path string, log *slog.Logger) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("--apply: %w", err)
	}
	parse := registry.ParseYAML
	if strings.HasSuffix(path, ".json") {
		parse = registry.ParseJSON
	}
	defs, err := parse(data)
	if err != nil {
		return fmt.Errorf("--apply %s: %w", path, err)
	}
	plan, err := reg.Apply(defs)
	if err != nil {
		return fmt.Errorf("--apply %s: %w", path, err)
	}
	log.Info("applied definitions", "file", path, "plan", plan.String())
	return nil
}

// layoutsOf resolves the view versions of pushes the store's journal
// replays at open, from the registry as it is then.
func layoutsOf(reg *registry.Registry) func(featurestore.ViewKey) *aggregate.Layout {
	return func(vk featurestore.ViewKey) *aggregate.Layout {
		for _, v := range reg.Snapshot().Views() {
			if v.ID == vk.ID && uint32(v.Version) == vk.Version {
				return v.Layout
			}
		}
		return nil
	}
}

// liveViews answers the store's TTL scan: is a view version live, and its
// TTL. The index is rebuilt when the registry's generation changes.
type liveViews struct {
	reg   *registry.Registry
	index atomic.Pointer[viewIndex]
}

type viewIndex struct {
	gen  uint64
	ttls map[featurestore.ViewKey]time.Duration
}

func (l *liveViews) lookup(vk featurestore.ViewKey) (time.Duration, bool) {
	snap := l.reg.Snapshot()
	idx := l.index.Load()
	if idx == nil || idx.gen != snap.Generation() {
		idx = &viewIndex{gen: snap.Generation(), ttls: map[featurestore.ViewKey]time.Duration{}}
		for _, v := range snap.Views() {
			idx.ttls[featurestore.ViewKey{ID: v.ID, Version: uint32(v.Version)}] = v.TTL
		}
		l.index.Store(idx)
	}
	ttl, ok := idx.ttls[vk]
	return ttl, ok
}
