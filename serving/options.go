package serving

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"google.golang.org/grpc"

	"github.com/featured-dev/featured/registry"
)

// Options configures a Server. The zero value is usable: EnsureDefaults fills
// in every unset field. Listen addresses are the caller's business: the
// Server only provides an http.Handler and registers gRPC services.
type Options struct {
	// MaxEntities is the most entity rows one lookup may name. The default
	// is 1000.
	MaxEntities int
	// MaxFeatures is the most features one lookup may name (after expanding
	// a feature service). The default is 1000.
	MaxFeatures int
	// MaxBodyBytes is the largest request body accepted, in bytes; larger
	// bodies get 413. The default is 4 MiB.
	MaxBodyBytes int64
	// MaxCells is the most values one lookup may return: entity rows times
	// features, where a last_k feature counts k values (its list's longest
	// length). A key named twice counts twice: rows are never collapsed. A
	// lookup over it is refused (400 / INVALID_ARGUMENT) before anything is
	// read. The default is 100000.
	MaxCells int
	// MaxResponseBytes bounds a lookup's encoded response, in bytes; a
	// lookup whose response would be larger is refused (400 /
	// INVALID_ARGUMENT) once the encoder passes it. The default is 16 MiB.
	MaxResponseBytes int
	// MaxLookups, MaxPushes, MaxRegistryChanges, MaxExports and MaxBackfills
	// are how many requests of each class run at once (Limit, over HTTP
	// and gRPC); past it a request waits up to ShedWait, then is
	// refused with 503 / RESOURCE_EXHAUSTED. Backfills include verify-skew
	// and apply?backfill=true. The defaults are 16, 8, 2, 2 and 1.
	MaxLookups, MaxPushes, MaxRegistryChanges, MaxExports, MaxBackfills int
	// ShedWait is how long a request waits for a slot of its class before
	// it is refused. The default is 100ms.
	ShedWait time.Duration
	// RetryAfter is what a refused request is told to wait (the
	// Retry-After header, whole seconds rounded up). The default is 1s.
	RetryAfter time.Duration
	// BodyTimeout is how long a request body may take to arrive, from the
	// start of the handler; a slower one is cut off (408). Negative means
	// none. The default is 30s.
	BodyTimeout time.Duration
	// SpineBodyTimeout is BodyTimeout for export and verify-skew spines
	// (up to 1 GiB). The default is 10m.
	SpineBodyTimeout time.Duration
	// WriteTimeout is how long a lookup, push or registry response may
	// take to write, from the start of the handler (exports and backfills
	// have none). Negative means none. The default is 60s.
	WriteTimeout time.Duration
	// Now returns the current time; lookups read features as of Now. The
	// default is time.Now. Tests inject a fixed clock.
	Now func() time.Time
	// Logger receives internal errors (500s). The default discards.
	Logger *slog.Logger
	// ReadyChecks are asked, in order, by every GET /readyz after the
	// server's own checks, "ready" (SetReady) and "store" (a shard with
	// on-disk corruption, featurestore.Store.Ready): a failing check makes /readyz
	// answer 503 naming it, unless the check is Warn; /readyz?verbose lists
	// every check (health.go). Lookups are not refused for a failing check:
	// the store still serves what it holds. Nil means none.
	ReadyChecks []Check
	// Disk is the data dir's disk state (a *diskguard.Guard). While it is
	// full, applies are refused (507 / RESOURCE_EXHAUSTED; pushes are
	// refused by the Pusher, which featured serve gives the same guard),
	// /v1/status shows it and /readyz?verbose lists it as a warn-only
	// "disk" check: lookups go on, so it never takes the server out of a
	// load balancer (docs/config.md). Nil: never full.
	Disk Disk
	// Middleware fills the router's hook slots (http.go); nil fields are
	// empty slots.
	Middleware Middleware
	// Observer, when set, is told of every lookup that read the store, over
	// HTTP and gRPC (observe.go); featured serve records it in metrics. Nil:
	// lookups are not observed.
	Observer LookupObserver
	// Interceptors fill the same slots of the gRPC chain
	// (GRPCServerOptions); nil fields are empty slots.
	Interceptors Interceptors
	// Offline holds the handlers of the offline routes (export, backfill,
	// verify-skew). featured serve sets them from package offline; a nil
	// handler leaves its route unmounted (404).
	Offline OfflineRoutes
	// Backup, when set, serves POST /v1/backup (cmd/featured takes the
	// checkpoint and uploads it; it returns its error as the offline
	// routes do, and ErrBadRequest for a bad destination).
	Backup func(http.ResponseWriter, *http.Request) error
	// Kafka, when set, adds the Kafka consumers to GET /v1/status. Nil
	// means push ingest only.
	Kafka KafkaStatus
	// OfflineLog, when set, adds the offline log's WAL counters and
	// quarantined files to GET /v1/status ("offline_log"). featured serve
	// sets it to its *eventlog.Log.
	OfflineLog OfflineLogStatus
	// Pprof mounts net/http/pprof under /debug/pprof/ on the router, behind
	// the same middleware (featured serve --pprof-on-http). The default is
	// off: profiles expose internals.
	Pprof bool
	// Backfill, when set, builds view version v's online state from the
	// offline log and switches the store to it, returning how many
	// entities it built; featured serve sets it to offline.Backfill over
	// its store and log. POST /v1/apply?backfill=true calls it after the
	// apply, for every ingested view version the apply created, one at a
	// time, on the request's goroutine and with the request's context (so
	// a client that goes away cancels it). It may take as long as reading
	// the log takes. Nil means the server has no offline log: apply refuses
	// ?backfill=true with 400 before applying anything.
	Backfill func(ctx context.Context, v *registry.View) (entities int, err error)
	// Version is what Feast's GetFeastServingInfo answers; featured serve
	// sets it to its build's version. The default is "featured".
	Version string

	// Placement, when set, routes lookups across the cluster's nodes
	// (route.go): rows of partitions this node does not answer are
	// forwarded to a replica that does, and answers carry positions. Nil:
	// one node, every row read here, responses as without a cluster.
	Placement Placement
	// ForwardTimeout bounds one forward to a peer (within the caller's
	// own deadline); past it the peer is marked down for a second and its
	// rows go to the next replica. The default is 250ms.
	ForwardTimeout time.Duration
	// PeerDialOptions are how this node dials its peers' gRPC addresses:
	// transport credentials matching the peers' TLS (featured serve passes
	// its own client TLS config). The default is plaintext. The caller's
	// bearer token is forwarded per call whatever they are.
	PeerDialOptions []grpc.DialOption
	// ForwardObserver, when set, is told of every forward (for the
	// forward duration histogram); nil: none. RouterStats counts them
	// either way.
	ForwardObserver ForwardObserver
	// Cluster, when set, is this node's part in a cluster: GET /v1/status
	// gains its "cluster" section and POST /v1/cluster/drain (admin)
	// drains the node. Nil: a single node, no such route.
	Cluster ClusterNode
	// MaxPeerReads is how many forwarded reads (PeerService.Read) this node
	// answers at once: a class of its own, so that front nodes whose
	// lookups wait on forwards never hold the slots their peers need. The
	// default is 16.
	MaxPeerReads int
}

// A ForwardObserver is told of every forward of a routed lookup, on the
// forwarding goroutine: the peer's address, the rows sent, how long the
// call took and its error. It must not block.
type ForwardObserver interface {
	ObserveForward(peer string, rows int, d time.Duration, err error)
}

// Defaults of Options.
const (
	DefaultMaxEntities  = 1000
	DefaultMaxFeatures  = 1000
	DefaultMaxBodyBytes = 4 << 20

	DefaultMaxCells          = 100_000
	DefaultMaxResponseBytes  = 16 << 20
	DefaultMaxLookups        = 16
	DefaultMaxPushes         = 8
	DefaultMaxRegistryChange = 2
	DefaultMaxExports        = 2
	DefaultMaxBackfills      = 1
	DefaultShedWait          = 100 * time.Millisecond
	DefaultRetryAfter        = time.Second
	DefaultBodyTimeout       = 30 * time.Second
	DefaultSpineBodyTimeout  = 10 * time.Minute
	DefaultWriteTimeout      = 60 * time.Second
	DefaultForwardTimeout    = 250 * time.Millisecond
	DefaultMaxPeerReads      = 16
)

// EnsureDefaults sets every zero field to its default.
func (o *Options) EnsureDefaults() {
	if o.MaxEntities == 0 {
		o.MaxEntities = DefaultMaxEntities
	}
	if o.MaxFeatures == 0 {
		o.MaxFeatures = DefaultMaxFeatures
	}
	if o.MaxBodyBytes == 0 {
		o.MaxBodyBytes = DefaultMaxBodyBytes
	}
	setInt := func(p *int, d int) {
		if *p == 0 {
			*p = d
		}
	}
	setInt(&o.MaxCells, DefaultMaxCells)
	setInt(&o.MaxResponseBytes, DefaultMaxResponseBytes)
	setInt(&o.MaxLookups, DefaultMaxLookups)
	setInt(&o.MaxPushes, DefaultMaxPushes)
	setInt(&o.MaxRegistryChanges, DefaultMaxRegistryChange)
	setInt(&o.MaxExports, DefaultMaxExports)
	setInt(&o.MaxBackfills, DefaultMaxBackfills)
	setInt(&o.MaxPeerReads, DefaultMaxPeerReads)
	setDur := func(p *time.Duration, d time.Duration) {
		if *p == 0 {
			*p = d
		}
	}
	setDur(&o.ShedWait, DefaultShedWait)
	setDur(&o.RetryAfter, DefaultRetryAfter)
	setDur(&o.BodyTimeout, DefaultBodyTimeout)
	setDur(&o.SpineBodyTimeout, DefaultSpineBodyTimeout)
	setDur(&o.WriteTimeout, DefaultWriteTimeout)
	setDur(&o.ForwardTimeout, DefaultForwardTimeout)
	if o.PeerDialOptions == nil {
		o.PeerDialOptions = defaultPeerDialOptions()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Version == "" {
		o.Version = "featured"
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
}

// Validate reports the first field that is out of range, by name.
func (o *Options) Validate() error {
	switch {
	case o.MaxEntities < 0:
		return fmt.Errorf("serving: options: max entities: %d is negative", o.MaxEntities)
	case o.MaxFeatures < 0:
		return fmt.Errorf("serving: options: max features: %d is negative", o.MaxFeatures)
	case o.MaxBodyBytes < 0:
		return fmt.Errorf("serving: options: max body bytes: %d is negative", o.MaxBodyBytes)
	case o.MaxBodyBytes > 1<<30:
		return fmt.Errorf("serving: options: max body bytes: %d exceeds 1 GiB", o.MaxBodyBytes)
	case o.MaxCells < 0:
		return fmt.Errorf("serving: options: max cells: %d is negative", o.MaxCells)
	case o.MaxResponseBytes < 0:
		return fmt.Errorf("serving: options: max response bytes: %d is negative", o.MaxResponseBytes)
	case o.ShedWait < 0:
		return fmt.Errorf("serving: options: shed wait: %s is negative", o.ShedWait)
	case o.RetryAfter < 0:
		return fmt.Errorf("serving: options: retry after: %s is negative", o.RetryAfter)
	case o.ForwardTimeout < 0:
		return fmt.Errorf("serving: options: forward timeout: %s is negative", o.ForwardTimeout)
	case o.Placement != nil && o.Placement.Partitions() < 1:
		return fmt.Errorf("serving: options: placement: %d partitions; want at least 1", o.Placement.Partitions())
	}
	// The server's own checks: "ready", "store", and "disk" with Options.Disk.
	seen := map[string]bool{readyCheckName: true, storeCheckName: true, diskCheckName: o.Disk != nil}
	for i, c := range o.ReadyChecks {
		switch {
		case c.Name == "" || strings.ContainsAny(c.Name, " \n[]"):
			return fmt.Errorf("serving: options: ready checks[%d]: name %q: want a word without spaces or brackets", i, c.Name)
		case seen[c.Name]:
			return fmt.Errorf("serving: options: ready checks[%d]: name %q: taken (by an earlier check or the server's own: %q, %q, and %q with Disk)", i, c.Name, readyCheckName, storeCheckName, diskCheckName)
		case c.Check == nil:
			return fmt.Errorf("serving: options: ready checks[%d] (%s): nil Check", i, c.Name)
		}
		seen[c.Name] = true
	}
	for c, n := range [numClasses]int{o.MaxLookups, o.MaxPushes, o.MaxRegistryChanges, o.MaxExports, o.MaxBackfills, o.MaxPeerReads} {
		if n < 1 {
			return fmt.Errorf("serving: options: max %s: %d is less than 1", Class(c), n)
		}
	}
	return nil
}
