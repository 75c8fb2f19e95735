package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// ProtocolName is the balancer's name in the group protocol. Every member of
// a group must offer it: the broker refuses a member with no protocol in
// common with the group.
const ProtocolName = "featured-v1"

// MembersTopicSuffix names the membership topic: Group + MembersTopicSuffix.
const MembersTopicSuffix = ".members"

// ErrInvalidConfig is wrapped by Join's errors for a Config that fails
// Validate.
var ErrInvalidConfig = errors.New("cluster: invalid config")

// Config configures a member. Only cmd/featured fills it from flags.
type Config struct {
	// Brokers are the Kafka bootstrap brokers (host:port). Required.
	Brokers []string
	// Group is the consumer group's name (--cluster-group). Required.
	Group string
	// InstanceID is the member's group.instance.id (static membership,
	// KIP-345): the pod name. Required and unique in the group.
	InstanceID string
	// Advertise is the address peers reach this member's gRPC listener
	// at. Required.
	Advertise string
	// Zone is the member's zone; replicas of a partition go to distinct
	// zones while unused zones remain. Empty means none.
	Zone string
	// Partitions is the cluster's partition count P. Required.
	Partitions int
	// Standbys is R, the standbys per partition the balancer places when
	// this member leads (capped at members-1). Zero places none;
	// cmd/featured's --standbys defaults to 1.
	Standbys int
	// MaxWarmups caps the warm-ups placed on one member at once. The
	// default value is 2 (Kafka Streams' max.warmup.replicas).
	MaxWarmups int
	// SessionTimeout is how long the broker waits without a heartbeat
	// before it removes the member and rebalances; a static member that
	// restarts within it gets its assignment back without a rebalance.
	// The broker refuses values outside its group.min/max.session.timeout.ms
	// (6 s to 30 min by default). The default value is 10 s.
	SessionTimeout time.Duration
	// HeartbeatInterval is how often the member heartbeats, which is also
	// how soon it notices a rebalance. The default value is a fifth of
	// SessionTimeout.
	HeartbeatInterval time.Duration
	// RebalanceTimeout is how long the broker waits for members to rejoin
	// during a rebalance. The default value is 30 s.
	RebalanceTimeout time.Duration
	// ProbingInterval is how often the member checks whether the
	// partitions it holds caught up changed since its last join and, if
	// so, rejoins, which rebalances the group: the backstop (as KIP-441's
	// probing rebalance) for warm-ups that caught up without a call to
	// Rebalance. The default value is 10 min.
	ProbingInterval time.Duration
	// CaughtUp returns the partitions this member holds within the
	// acceptable recovery lag of their end offsets. It is called at every
	// join (from the Kafka client's goroutine) and every ProbingInterval
	// (from the Membership's), so it must be quick, safe for concurrent
	// use, and must not call the Membership. Nil reports none.
	CaughtUp func() []int32
	// Previous is the owner map this member last saw, if the server kept
	// it (e.g. in its data dir). Its roles go into the member's joins until
	// it receives a map, so a member that comes back after the session
	// timeout (a rebalance without it already happened, or happens at its
	// join) keeps its roles where balance allows. Within the session
	// timeout it does not matter: the broker hands a static member its
	// current assignment without a rebalance. Nil for none.
	Previous *OwnerMap
	// Logger receives the member's and the Kafka client's logs. The default
	// value is slog.Default().
	Logger *slog.Logger
}

// EnsureDefaults fills the zero fields that have defaults.
func (c *Config) EnsureDefaults() {
	if c.MaxWarmups == 0 {
		c.MaxWarmups = 2
	}
	if c.SessionTimeout == 0 {
		c.SessionTimeout = 10 * time.Second
	}
	if c.HeartbeatInterval == 0 {
		c.HeartbeatInterval = c.SessionTimeout / 5
	}
	if c.RebalanceTimeout == 0 {
		c.RebalanceTimeout = 30 * time.Second
	}
	if c.ProbingInterval == 0 {
		c.ProbingInterval = 10 * time.Minute
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Validate reports the first invalid field, after EnsureDefaults.
func (c *Config) Validate() error {
	switch {
	case len(c.Brokers) == 0:
		return errors.New("brokers: none")
	case c.Group == "":
		return errors.New("group: empty")
	case c.InstanceID == "":
		return errors.New("instance_id: empty")
	case c.Advertise == "":
		return errors.New("advertise: empty")
	case c.Partitions < 1 || c.Partitions > maxDecodedCount:
		return fmt.Errorf("partitions: %d outside [1, %d]", c.Partitions, maxDecodedCount)
	case c.Standbys < 0:
		return fmt.Errorf("standbys: %d is negative", c.Standbys)
	case c.MaxWarmups < 1:
		return fmt.Errorf("max_warmups: %d, want at least 1", c.MaxWarmups)
	case c.HeartbeatInterval <= 0 || c.HeartbeatInterval >= c.SessionTimeout:
		return fmt.Errorf("heartbeat_interval: %v, want within (0, session_timeout %v)", c.HeartbeatInterval, c.SessionTimeout)
	case c.RebalanceTimeout <= 0 || c.ProbingInterval <= 0:
		return errors.New("rebalance_timeout and probing_interval: must be positive")
	case c.Previous != nil && c.Previous.Partitions != c.Partitions:
		return fmt.Errorf("previous: a map of %d partitions, want %d", c.Previous.Partitions, c.Partitions)
	}
	return nil
}

// Membership is this process's member of the group: it keeps the current
// owner map. All methods may be called from any goroutine.
type Membership struct {
	cfg   Config
	self  Member
	topic string
	cl    *kgo.Client

	mu struct {
		sync.Mutex
		cur        *OwnerMap     // nil before the first map
		changed    chan struct{} // closed when cur is replaced
		ledGen     int32         // the generation this member last balanced as leader
		sentCaught []int32       // the caught-up partitions of the last join
		sentDrain  bool          // the draining flag of the last join
	}

	rebalances  atomic.Uint64
	balances    atomic.Uint64
	groupErrors atomic.Uint64
	draining    atomic.Bool

	// stop ends the goroutines below; Close and Leave call it, then wait.
	stop      context.CancelFunc
	wg        sync.WaitGroup
	closeOnce sync.Once
}

// Stats is a snapshot of the member's counters, for the telemetry package.
type Stats struct {
	// Generation is the generation of the current map, 0 before the first.
	Generation int32 `json:"generation"`
	// Rebalances counts the owner maps this member adopted.
	Rebalances uint64 `json:"rebalances"`
	// Balances counts the maps this member computed as group leader.
	Balances uint64 `json:"balances"`
	// Leader is whether this member balanced the current map.
	Leader bool `json:"leader"`
	// GroupErrors counts the errors of the group session (a failed join,
	// sync or heartbeat, a map this member refused); the client logs each
	// and retries.
	GroupErrors uint64 `json:"group_errors"`
}

// Join creates the membership topic if it is absent and joins the group.
// It returns once the group client runs, not once a map arrived: wait on
// Current's channel for that. ctx bounds the topic creation only.
func Join(ctx context.Context, cfg Config) (*Membership, error) {
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("join group: %w: %w", ErrInvalidConfig, err)
	}
	m := &Membership{
		cfg:   cfg,
		self:  Member{InstanceID: cfg.InstanceID, Advertise: cfg.Advertise, Zone: cfg.Zone},
		topic: cfg.Group + MembersTopicSuffix,
	}
	m.mu.changed = make(chan struct{})
	if err := m.ensureTopic(ctx); err != nil {
		return nil, fmt.Errorf("join group %s: %w", cfg.Group, err)
	}
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(cfg.Brokers...),
		kgo.ClientID("featured-"+cfg.InstanceID),
		kgo.WithLogger(kgoLogger{cfg.Logger}),
		kgo.ConsumerGroup(cfg.Group),
		kgo.ConsumeTopics(m.topic),
		kgo.Balancers(&groupBalancer{m: m}),
		kgo.InstanceID(cfg.InstanceID),
		kgo.SessionTimeout(cfg.SessionTimeout),
		kgo.HeartbeatInterval(cfg.HeartbeatInterval),
		kgo.RebalanceTimeout(cfg.RebalanceTimeout),
		kgo.DisableAutoCommit(),
	)
	if err != nil {
		return nil, fmt.Errorf("join group %s: new client: %w", cfg.Group, err)
	}
	m.cl = cl
	runCtx, stop := context.WithCancel(context.Background())
	m.stop = stop
	m.wg.Go(func() { m.probe(runCtx) })
	m.wg.Go(func() { m.drainErrors(runCtx) })
	return m, nil
}

// ensureTopic creates the one-partition membership topic. The group's
// members subscribe to it because the consumer protocol needs a topic; no
// record is ever written to or read from it.
func (m *Membership) ensureTopic(ctx context.Context) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(m.cfg.Brokers...), kgo.WithLogger(kgoLogger{m.cfg.Logger}))
	if err != nil {
		return fmt.Errorf("create topic %s: new client: %w", m.topic, err)
	}
	defer cl.Close()
	req := kmsg.NewPtrCreateTopicsRequest()
	t := kmsg.NewCreateTopicsRequestTopic()
	t.Topic = m.topic
	t.NumPartitions = 1
	t.ReplicationFactor = -1 // the broker's default.replication.factor
	req.Topics = append(req.Topics, t)
	req.TimeoutMillis = 30_000
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return fmt.Errorf("create topic %s: %w", m.topic, err)
	}
	if len(resp.Topics) != 1 {
		return fmt.Errorf("create topic %s: %d topics in the answer", m.topic, len(resp.Topics))
	}
	if err := kerr.ErrorForCode(resp.Topics[0].ErrorCode); err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
		return fmt.Errorf("create topic %s: %w", m.topic, err)
	}
	return nil
}

// Current returns the current owner map (nil before the first) and a
// channel closed when another map replaces it.
func (m *Membership) Current() (*OwnerMap, <-chan struct{}) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.mu.cur, m.mu.changed
}

// Self returns this member as maps name it.
func (m *Membership) Self() Member { return m.self }

// Rebalance asks the group to rebalance (KIP-568), for a member whose
// caught-up partitions changed, e.g. warm-ups that caught up: the member
// rejoins with new metadata, which makes the broker rebalance. A rejoin
// with unchanged metadata by a member that is not the leader rebalances
// nothing.
func (m *Membership) Rebalance() {
	m.cl.ForceRebalance()
}

// Drain marks this member draining and rebalances: the balancer places no
// new replica on it and moves its replicas to the other members, each once
// its new holder caught up (warm-ups first), so the member keeps serving
// what it still holds. When its roles in the current map are empty, Leave.
// Draining cannot be undone but by a restart.
func (m *Membership) Drain() {
	m.draining.Store(true)
	m.cl.ForceRebalance()
}

// Stats returns the member's counters.
func (m *Membership) Stats() Stats {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := Stats{Rebalances: m.rebalances.Load(), Balances: m.balances.Load(), GroupErrors: m.groupErrors.Load()}
	if m.mu.cur != nil {
		s.Generation = m.mu.cur.Generation
		s.Leader = m.mu.ledGen == m.mu.cur.Generation
	}
	return s
}

// Close stops the member. With static membership it does not leave the
// group: the broker keeps the member's place and assignment for
// SessionTimeout, so a process restarting with the same InstanceID within
// it rejoins without a rebalance; otherwise the broker removes the member
// after SessionTimeout and the group rebalances (a failure, as a crash is).
// Use Leave for a member that should give up its place now. Close is
// idempotent.
func (m *Membership) Close() {
	m.closeOnce.Do(func() {
		m.stop()
		m.wg.Wait()
		m.cl.Close()
	})
}

// Leave removes this member from the group now (a LeaveGroup for its
// instance ID) and closes it, so the group rebalances at once without it:
// for a drained node that is going away. The member is closed even when
// the request fails.
func (m *Membership) Leave(ctx context.Context) error {
	var err error
	m.closeOnce.Do(func() {
		m.stop()
		m.wg.Wait()
		defer m.cl.Close()
		// kgo does not send LeaveGroup for a static member; stop its group
		// management first so no heartbeat or join follows our request.
		if lerr := m.cl.LeaveGroupContext(ctx); lerr != nil {
			err = fmt.Errorf("leave group %s: %w", m.cfg.Group, lerr)
			return
		}
		req := kmsg.NewPtrLeaveGroupRequest()
		req.Group = m.cfg.Group
		lm := kmsg.NewLeaveGroupRequestMember()
		lm.MemberID, _ = m.cl.GroupMetadata()
		lm.InstanceID = kmsg.StringPtr(m.cfg.InstanceID)
		lm.Reason = kmsg.StringPtr("featured: member leaving (drained)")
		req.Members = append(req.Members, lm)
		resp, rerr := req.RequestWith(ctx, m.cl)
		if rerr != nil {
			err = fmt.Errorf("leave group %s: %w", m.cfg.Group, rerr)
			return
		}
		if rerr := kerr.ErrorForCode(resp.ErrorCode); rerr != nil {
			err = fmt.Errorf("leave group %s: %w", m.cfg.Group, rerr)
			return
		}
		for _, r := range resp.Members {
			if rerr := kerr.ErrorForCode(r.ErrorCode); rerr != nil {
				err = fmt.Errorf("leave group %s as %s: %w", m.cfg.Group, m.cfg.InstanceID, rerr)
			}
		}
	})
	return err
}

// probe rejoins every ProbingInterval if the partitions this member holds
// caught up (or its draining flag) changed since its last join. Every member probes, not only the
// leader: a rejoin with changed metadata makes the broker rebalance
// whoever leads, and the balancer is a function of the members' metadata,
// so a rebalance when no member's caught-up set changed would not move
// anything. (Roles, the other changing part of the metadata, change only
// with a map, which the balancer made from them.)
func (m *Membership) probe(ctx context.Context) {
	t := time.NewTicker(m.cfg.ProbingInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			now := m.joinMeta()
			m.mu.Lock()
			changed := !slices.Equal(now.CaughtUp, m.mu.sentCaught) || now.Draining != m.mu.sentDrain
			m.mu.Unlock()
			if changed {
				m.cfg.Logger.Debug("cluster: caught-up partitions changed, rejoining", "group", m.cfg.Group)
				m.cl.ForceRebalance()
			}
		}
	}
}

// drainErrors polls the group client, which never has records (nothing is
// assigned) but queues an error fetch for every failed group session; unpolled,
// they would pile up for the life of the process.
func (m *Membership) drainErrors(ctx context.Context) {
	for {
		fs := m.cl.PollFetches(ctx)
		if ctx.Err() != nil || fs.IsClientClosed() {
			return
		}
		fs.EachError(func(topic string, p int32, err error) {
			m.groupErrors.Add(1)
			m.cfg.Logger.Warn("cluster: group session error", "group", m.cfg.Group, "err", err)
		})
	}
}

func (m *Membership) noteJoined(mm *MemberMeta) {
	m.mu.Lock()
	m.mu.sentCaught = mm.CaughtUp
	m.mu.sentDrain = mm.Draining
	m.mu.Unlock()
}

// joinMeta is this member's join metadata now.
func (m *Membership) joinMeta() *MemberMeta {
	var caught []int32
	if m.cfg.CaughtUp != nil {
		caught = m.cfg.CaughtUp()
	}
	return metaFor(m.self, m.cfg.Partitions, m.last(), caught, m.draining.Load())
}

// last is the newest map this member knows: the current one, or the
// configured Previous before the first.
func (m *Membership) last() *OwnerMap {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.mu.cur != nil {
		return m.mu.cur
	}
	return m.cfg.Previous
}

// adopt makes om current unless it is the current map again (a rejoin
// that did not rebalance hands back the same assignment). A map of an older
// generation is adopted too, with a warning: the broker answers in order,
// so that means the group was recreated (e.g. deleted while empty) and its
// generations started over.
func (m *Membership) adopt(om *OwnerMap) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if cur := m.mu.cur; cur != nil {
		if om.Generation == cur.Generation && bytes.Equal(om.Encode(), cur.Encode()) {
			return
		}
		if om.Generation <= cur.Generation {
			m.cfg.Logger.Warn("cluster: owner map of an older generation; the group was recreated",
				"group", m.cfg.Group, "generation", om.Generation, "was", cur.Generation)
		}
	}
	m.mu.cur = om
	close(m.mu.changed)
	m.mu.changed = make(chan struct{})
	m.rebalances.Add(1)
	m.cfg.Logger.Info("cluster: new owner map", "group", m.cfg.Group, "generation", om.Generation,
		"members", len(om.Members), "roles", len(om.Roles(m.self.InstanceID)))
}

func (m *Membership) noteBalanced(gen int32) {
	m.balances.Add(1)
	m.mu.Lock()
	m.mu.ledGen = gen
	m.mu.Unlock()
}

// kgoLogger sends the Kafka client's logs to slog. The client's info lines
// (every join, sync and heartbeat loop) go to debug.
type kgoLogger struct{ l *slog.Logger }

func (k kgoLogger) Level() kgo.LogLevel { return kgo.LogLevelInfo }

func (k kgoLogger) Log(level kgo.LogLevel, msg string, keyvals ...any) {
	lvl := slog.LevelDebug
	switch level {
	case kgo.LogLevelError:
		lvl = slog.LevelError
	case kgo.LogLevelWarn:
		lvl = slog.LevelWarn
	}
	k.l.Log(context.Background(), lvl, "kafka: "+msg, keyvals...)
}
