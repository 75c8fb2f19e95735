package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/featured-dev/featured/cluster"
	"github.com/featured-dev/featured/cluster/replicas"
	"github.com/featured-dev/featured/ingest"
	"github.com/featured-dev/featured/internal/certs"
	"github.com/featured-dev/featured/internal/telemetry"
	"github.com/featured-dev/featured/serving"
)

// clusterConfig is the cluster mode's part of serveConfig (docs/config.md
// "Cluster mode"; docs/scaling.md "Flags and Helm values").
type clusterConfig struct {
	group          string
	instance       string
	advertise      string
	zone           string
	standbys       int
	maxStaleness   time.Duration
	forwardTimeout time.Duration
	sessionTimeout time.Duration
	recoveryLag    int64
	maxWarmups     int
	probing        time.Duration
	// Hand-over through object storage (handover.go).
	checkpointDest     string
	checkpointInterval time.Duration
	checkpointKeep     int
}

func clusterFlags(fs *flag.FlagSet, c *clusterConfig) {
	host, _ := os.Hostname()
	fs.StringVar(&c.group, "cluster-group", "", "Kafka consumer group of the cluster; set: cluster mode (needs --kafka-brokers and --cluster-advertise)")
	fs.StringVar(&c.instance, "cluster-instance", host, "this node's group.instance.id (static membership): stable across restarts, unique in the cluster; default $HOSTNAME")
	fs.StringVar(&c.advertise, "cluster-advertise", "", "host:port of this node's gRPC listener as its peers reach it (required in cluster mode)")
	fs.StringVar(&c.zone, "cluster-zone", "", "this node's zone: replicas of a partition go to distinct zones while unused zones remain")
	fs.IntVar(&c.standbys, "standbys", 1, "standby replicas per partition (R), besides the active; capped at nodes-1")
	fs.DurationVar(&c.maxStaleness, "max-staleness", 5*time.Second, "how stale a partition this node holds may be for it to answer reads of it itself; staler: forwarded to another replica")
	fs.DurationVar(&c.forwardTimeout, "cluster-forward-timeout", serving.DefaultForwardTimeout, "deadline of one forwarded read to a peer (within the caller's); past it the peer is skipped for 1s and the next replica tried")
	fs.DurationVar(&c.sessionTimeout, "cluster-session-timeout", 10*time.Second, "Kafka group session timeout: how long a silent node keeps its partitions (the broker allows 6s to 30m by default)")
	fs.Int64Var(&c.recoveryLag, "acceptable-recovery-lag", 10000, "records behind the end offset, on every source, at which a partition counts as caught up (a warm-up becomes a replica)")
	fs.IntVar(&c.maxWarmups, "max-warmups", 2, "warm-ups placed on one node at once")
	fs.StringVar(&c.checkpointDest, "checkpoint-dest", "", "where each partition's active uploads the partition's checkpoint, and a node adopting a partition it holds no state of restores it from (<dest>/partitions/p-NNNN/): a directory, file:///path or s3://bucket/prefix, as --backup-dest; empty: a new replica replays the topic")
	fs.DurationVar(&c.checkpointInterval, "checkpoint-interval", 15*time.Minute, "how often the active of each partition checkpoints it to --checkpoint-dest (a restored replica then replays at most this much)")
	fs.IntVar(&c.checkpointKeep, "checkpoint-keep", 4, "checkpoints kept per partition at --checkpoint-dest, the newest (0 keeps all)")
	fs.DurationVar(&c.probing, "probing-interval", 10*time.Minute, "how often a node rejoins the group when the partitions it holds caught up changed and no rebalance said so (the backstop for warm-ups)")
}

// check refuses the combinations cluster mode cannot run with, naming the
// flag.
func (c *clusterConfig) check(sc *serveConfig) error {
	if c.group == "" {
		return nil
	}
	switch {
	case sc.kafkaBrokers == "":
		return errors.New("--cluster-group needs --kafka-brokers: membership is a Kafka consumer group")
	case c.instance == "":
		return errors.New("--cluster-instance: empty (and $HOSTNAME unset): every node needs a stable, unique name")
	case c.advertise == "":
		return errors.New("--cluster-advertise: required with --cluster-group: the host:port of this node's gRPC listener (--grpc-addr) as its peers reach it")
	case c.standbys < 0:
		return fmt.Errorf("--standbys: %d is negative", c.standbys)
	case c.maxStaleness <= 0:
		return fmt.Errorf("--max-staleness: %s, want a positive duration", c.maxStaleness)
	case c.forwardTimeout <= 0:
		return fmt.Errorf("--cluster-forward-timeout: %s, want a positive duration", c.forwardTimeout)
	case c.sessionTimeout < 6*time.Second:
		return fmt.Errorf("--cluster-session-timeout: %s is below the broker's default minimum (group.min.session.timeout.ms, 6s)", c.sessionTimeout)
	case c.recoveryLag < 0:
		return fmt.Errorf("--acceptable-recovery-lag: %d is negative", c.recoveryLag)
	case c.maxWarmups < 1:
		return fmt.Errorf("--max-warmups: %d, want at least 1", c.maxWarmups)
	case c.probing <= 0:
		return fmt.Errorf("--probing-interval: %s, want a positive duration", c.probing)
	case c.checkpointInterval <= 0:
		return fmt.Errorf("--checkpoint-interval: %s, want a positive duration", c.checkpointInterval)
	case c.checkpointKeep < 0:
		return fmt.Errorf("--checkpoint-keep: %d is negative", c.checkpointKeep)
	}
	if _, port, err := net.SplitHostPort(c.advertise); err != nil || port == "" || port == "0" {
		return fmt.Errorf("--cluster-advertise %q: want host:port (the port --grpc-addr listens on)", c.advertise)
	}
	return nil
}

// clusterPushOptions makes pushes go through Kafka in cluster mode: a push
// is produced to its source's push topic (<group>.push.<source>) and every
// replica of each partition applies it as a Kafka consumer. Atomic pushes
// are Kafka transactions, under a transactional ID per node.
func clusterPushOptions(c *serveConfig, partitions int) *ingest.ClusterOptions {
	return &ingest.ClusterOptions{
		Brokers:         strings.Split(c.kafkaBrokers, ","),
		Group:           c.cluster.group,
		Partitions:      partitions,
		TransactionalID: c.cluster.group + "." + c.cluster.instance,
	}
}

// clusterNode is serve's cluster mode: the group member and the Keeper that
// follows its maps. Start it once the listeners run (peers reach this
// node's gRPC at once), stop it before ingest stops.
type clusterNode struct {
	cfg    clusterConfig
	keeper *replicas.Keeper
	member *cluster.Membership
	prev   *cluster.OwnerMap
	log    *slog.Logger
	stop   context.CancelFunc
	wg     sync.WaitGroup
}

// newClusterNode makes the Keeper over set (the partitions consumed),
// actives (those committed to the lag groups) and consumers, holding the
// partitions of the owner map the data dir kept until the group answers.
// With --checkpoint-dest, partitions move through object storage (h).
func newClusterNode(cfg clusterConfig, dataDir string, partitions int, set, actives *ingest.PartitionSet, consumers replicas.Consumers, h replicas.Handover, log *slog.Logger) (*clusterNode, error) {
	mapFile := filepath.Join(dataDir, "cluster-map")
	prev, err := replicas.LoadMap(mapFile)
	if err != nil {
		log.Warn("cluster: the saved owner map is unreadable; joining without it", "err", err)
		prev = nil
	}
	if prev != nil && prev.Partitions != partitions {
		log.Warn("cluster: the saved owner map has another partition count; joining without it", "saved", prev.Partitions, "partitions", partitions)
		prev = nil
	}
	k, err := replicas.New(replicas.Options{
		Self: cfg.instance, Partitions: partitions, Set: set, Actives: actives, Consumers: consumers, Previous: prev, MapFile: mapFile,
		MaxStaleness: cfg.maxStaleness, AcceptableRecoveryLag: cfg.recoveryLag, Logger: log,
		Handover: h, CheckpointInterval: cfg.checkpointInterval,
	})
	if err != nil {
		return nil, err
	}
	return &clusterNode{cfg: cfg, keeper: k, prev: prev, log: log}, nil
}

// start joins the group and follows its maps until close. ctx bounds the
// join's topic creation.
func (n *clusterNode) start(ctx context.Context, brokers []string, partitions int) error {
	jctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	m, err := cluster.Join(jctx, cluster.Config{
		Brokers: brokers, Group: n.cfg.group, InstanceID: n.cfg.instance, Advertise: n.cfg.advertise, Zone: n.cfg.zone,
		Partitions: partitions, Standbys: n.cfg.standbys, MaxWarmups: n.cfg.maxWarmups,
		SessionTimeout: n.cfg.sessionTimeout, ProbingInterval: n.cfg.probing,
		CaughtUp: n.keeper.CaughtUp, Previous: n.prev, Logger: n.log,
	})
	if err != nil {
		return fmt.Errorf("--cluster-group %s: %w", n.cfg.group, err)
	}
	n.member = m
	rctx, stop := context.WithCancel(context.Background())
	n.stop = stop
	n.wg.Go(func() { n.keeper.Run(rctx, m) })
	n.log.Info("cluster: joined", "group", n.cfg.group, "instance", n.cfg.instance, "advertise", n.cfg.advertise, "partitions", partitions)
	return nil
}

// close stops following the group without leaving it (static membership):
// a node restarted within the session timeout gets its partitions back
// without a rebalance; one that does not come back is removed by the
// broker after it. A drained node has left already.
func (n *clusterNode) close() {
	if n.member == nil {
		return
	}
	n.stop()
	n.wg.Wait()
	n.member.Close()
}

// ClusterStatus is serving.ClusterNode's.
func (n *clusterNode) ClusterStatus() any { return n.keeper.Status() }

// clusterMetrics is what the cluster metrics read of the node: the Keeper,
// and its hand-over counters in telemetry's terms.
type clusterMetrics struct{ *replicas.Keeper }

// HandoverCounts is telemetry.HandoverNode's.
func (m clusterMetrics) HandoverCounts() (telemetry.HandoverCounts, bool) {
	h, ok := m.Keeper.HandoverStats()
	if !ok {
		return telemetry.HandoverCounts{}, false
	}
	return telemetry.HandoverCounts{Restores: h.Restores, Replays: h.Replays, RestoreErrors: h.RestoreErrors,
		RestoreBytes: h.RestoreBytes, RestoreSeconds: h.RestoreSeconds,
		Checkpoints: h.Checkpoints, CheckpointErrors: h.CheckpointErrors, CheckpointBytes: h.CheckpointBytes}, true
}

var _ telemetry.HandoverNode = clusterMetrics{}

// Drain is serving.ClusterNode's.
func (n *clusterNode) Drain() error {
	n.log.Info("cluster: draining: partitions move to other nodes as they catch up, then this node leaves the group")
	return n.keeper.Drain()
}

var _ serving.ClusterNode = (*clusterNode)(nil)

// A lookup's own staleness bound routes by the Keeper's measurements.
var _ serving.BoundedRouter = (*replicas.Keeper)(nil)

// peerDialOptions are how this node dials its peers: plaintext, or with
// --tls-cert TLS trusting the system roots plus --tls-client-ca and
// presenting this node's own certificate (peers that verify client
// certificates accept it).
func peerDialOptions(sc *serveConfig, rl *certs.Reloader) ([]grpc.DialOption, error) {
	if rl == nil {
		return nil, nil
	}
	cfg, err := certs.ClientConfig(sc.tlsClientCA)
	if err != nil {
		return nil, fmt.Errorf("--tls-client-ca: %w", err)
	}
	cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
		return rl.GetCertificate(nil)
	}
	return []grpc.DialOption{grpc.WithTransportCredentials(credentials.NewTLS(cfg))}, nil
}

const clusterUsage = `Usage:
  featured cluster status [--server URL]   the owner map: members, and per partition its
                                           active, standbys and warm-ups, and this node's
                                           role, lag and whether it answers reads of it
  featured cluster drain [--server URL]    move the node's partitions to the others, then
                                           leave the group (a node being removed for good;
                                           a rolling restart needs no drain)
`

// clusterCmd is featured cluster status|drain, over the server's HTTP API.
func clusterCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || (args[0] != "status" && args[0] != "drain") {
		fmt.Fprint(stderr, clusterUsage)
		return errors.New("cluster: want status or drain")
	}
	sub := args[0]
	fs := flag.NewFlagSet("cluster "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	server := clientFlags(fs)
	asJSON := fs.Bool("json", false, "print the server's JSON")
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	cl := newClient(server, quickTimeout)
	if sub == "drain" {
		out, err := cl.do(ctx, http.MethodPost, "/v1/cluster/drain", "", nil)
		if err != nil {
			return err
		}
		if *asJSON {
			printJSON(stdout, out)
			return nil
		}
		fmt.Fprintln(stdout, "draining: its partitions move to other nodes as they catch up, then it leaves the group;")
		fmt.Fprintln(stdout, "featured cluster status shows left: true when it may be stopped")
		return nil
	}
	out, err := cl.do(ctx, http.MethodGet, "/v1/status", "", nil)
	if err != nil {
		return err
	}
	var body struct {
		Cluster *replicas.Status `json:"cluster"`
	}
	if err := json.Unmarshal(out, &body); err != nil {
		return fmt.Errorf("read status: %w", err)
	}
	if body.Cluster == nil {
		return errors.New("the server is not in cluster mode (no --cluster-group)")
	}
	if *asJSON {
		b, _ := json.Marshal(body.Cluster)
		printJSON(stdout, b)
		return nil
	}
	printClusterStatus(stdout, body.Cluster)
	return nil
}

func printClusterStatus(w io.Writer, st *replicas.Status) {
	fmt.Fprintf(w, "node %s  generation %d  leader %v  draining %v  left %v\n", st.Instance, st.Generation, st.Leader, st.Draining, st.Left)
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "MEMBER\tADVERTISE\tZONE")
	for _, m := range st.Members {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", m.Instance, m.Advertise, m.Zone)
	}
	tw.Flush()
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PARTITION\tACTIVE\tSTANDBYS\tWARMUPS\tTHIS NODE\tLOCAL\tLAG")
	for _, p := range st.Partitions {
		lag := "-"
		if p.LagRecords >= 0 {
			lag = fmt.Sprint(p.LagRecords)
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%v\t%s\n", p.Partition, p.Active, strings.Join(p.Standbys, ","),
			strings.Join(p.Warmups, ","), p.Role, p.Local, lag)
	}
	tw.Flush()
}

// clusterRefused answers an offline route a cluster node cannot serve with
// 501, saying why and what works.
func clusterRefused(what string) func(http.ResponseWriter, *http.Request) error {
	return func(http.ResponseWriter, *http.Request) error {
		return fmt.Errorf("%w: %s: this node's offline log holds only the partitions it has held, so the answer would miss the other partitions' entities; run it on a single-node featured fed the same topics", serving.ErrClusterUnsupported, what)
	}
}
