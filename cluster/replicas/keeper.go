package replicas

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/featured-dev/featured/cluster"
	"github.com/featured-dev/featured/ingest"
)

// Membership is what a Keeper needs of the group member
// (*cluster.Membership).
type Membership interface {
	Current() (*cluster.OwnerMap, <-chan struct{})
	Rebalance()
	Drain()
	Leave(ctx context.Context) error
	Stats() cluster.Stats
}

var _ Membership = (*cluster.Membership)(nil)

// Consumers is what a Keeper reads of the Kafka ingest (*ingest.Kafka):
// every source's partitions and how far each was applied. Status is called
// every Tick from the Keeper's goroutine.
type Consumers interface {
	Status() []ingest.ConsumerStatus
}

var _ Consumers = (*ingest.Kafka)(nil)

// ErrNoMap is Ready's error before the first owner map arrived.
var ErrNoMap = errors.New("replicas: no owner map yet (joining the cluster's group)")

// Options configures a Keeper. Only cmd/featured fills it from flags.
type Options struct {
	// Self is this member's instance ID as the owner map names it.
	// Required.
	Self string
	// Partitions is the cluster's partition count P. Required.
	Partitions int
	// Set is the ingest partition set (ingest.KafkaOptions.Partitions)
	// the Keeper sets to this node's partitions. Required.
	Set *ingest.PartitionSet
	// Actives, when set, is set to the partitions this node is the active
	// of (ingest.KafkaOptions.GroupPartitions: only actives commit their
	// progress to the lag tools' consumer groups).
	Actives *ingest.PartitionSet
	// Consumers, when set, is the Kafka ingest whose positions say how far
	// each partition was applied. Nil: no Kafka source, every partition
	// held is caught up.
	Consumers Consumers
	// Previous is the owner map this node saw last (LoadMap); its roles
	// are consumed from the start, before the first map arrives. Nil for
	// none.
	Previous *cluster.OwnerMap
	// MapFile, when set, is where every new owner map is saved (and
	// LoadMap reads it back at the next start).
	MapFile string
	// MaxStaleness is how stale a partition this node holds may be for it
	// to answer reads of it itself. The default value is 5s.
	MaxStaleness time.Duration
	// AcceptableRecoveryLag is how many records behind the end offset a
	// partition may be, on every source, to count as caught up. The
	// default value is 10000 (Kafka Streams' acceptable.recovery.lag).
	AcceptableRecoveryLag int64
	// Tick is how often the consumers' positions are read. The default
	// value is 100ms.
	Tick time.Duration
	// Logger receives the Keeper's logs. The default value is
	// slog.Default().
	Logger *slog.Logger
	// Handover, when set, restores a partition adopted empty from its
	// newest checkpoint before it is consumed, and checkpoints the
	// partitions this node is the active of every CheckpointInterval.
	// Nil: partitions are replayed from the topic.
	Handover Handover
	// CheckpointInterval is how often the actives checkpoint, with
	// Handover. The default value is 15m.
	CheckpointInterval time.Duration
}

// EnsureDefaults fills the zero fields that have defaults.
func (o *Options) EnsureDefaults() {
	if o.MaxStaleness == 0 {
		o.MaxStaleness = 5 * time.Second
	}
	if o.AcceptableRecoveryLag == 0 {
		o.AcceptableRecoveryLag = 10_000
	}
	if o.Tick == 0 {
		o.Tick = 100 * time.Millisecond
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.CheckpointInterval == 0 {
		o.CheckpointInterval = 15 * time.Minute
	}
}

// Validate reports the first invalid field, after EnsureDefaults.
func (o *Options) Validate() error {
	switch {
	case o.Self == "":
		return errors.New("replicas: options: self: empty")
	case o.Partitions < 1:
		return fmt.Errorf("replicas: options: partitions: %d, want at least 1", o.Partitions)
	case o.Set == nil:
		return errors.New("replicas: options: set: nil")
	case o.MaxStaleness < 0 || o.AcceptableRecoveryLag < 0 || o.Tick <= 0 || o.CheckpointInterval < 0:
		return errors.New("replicas: options: max staleness, acceptable recovery lag, tick and checkpoint interval: must not be negative")
	case o.Previous != nil && o.Previous.Partitions != o.Partitions:
		return fmt.Errorf("replicas: options: previous: a map of %d partitions, want %d", o.Previous.Partitions, o.Partitions)
	}
	return nil
}

// Keeper keeps this node's replicas in step with the owner map (see the
// package doc). Create it with New, then Run it with the Membership.
type Keeper struct {
	opts Options

	// table is what Route reads: replaced, never changed.
	table atomic.Pointer[table]
	// caught is the last Tick's caught-up partitions, for CaughtUp.
	caught atomic.Pointer[[]int32]

	mu struct {
		sync.Mutex
		m        Membership // set by Run
		draining bool
		left     bool
		leaveErr string
		// forwarding reads the router's counters for Status.
		forwarding func() any
		handover   HandoverStats
	}
	drainc chan struct{} // Drain wakes Run

	// Owned by Run's goroutine.
	samples map[sampleKey][]sample
	asked   map[int32]bool // warm-ups caught up this map, rebalance asked
}

// table is one routing decision for every partition, with what it was made
// of (for Status).
type table struct {
	om    *cluster.OwnerMap // nil before the first map
	roles []cluster.Role
	peers [][]string // the other replicas' addresses, active first
	parts []partState
}

// partState is what the last Tick found of one partition.
type partState struct {
	local    bool  // answered here
	caughtUp bool  // within AcceptableRecoveryLag on every source
	lag      int64 // records behind on the most lagging source; -1 unknown
	// stale is how long ago the partition's end was last reached on every
	// source; -1 unknown or beyond the samples kept.
	stale   time.Duration
	sources []SourceOffset
}

type sampleKey struct {
	source    string
	partition int32
}

// sample is a partition's end offset as seen at a time.
type sample struct {
	at   time.Time
	high int64
}

// New returns a Keeper holding opts.Previous's partitions of this node, if
// any, until Run sees the first map.
func New(opts Options) (*Keeper, error) {
	opts.EnsureDefaults()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	k := &Keeper{opts: opts, drainc: make(chan struct{}, 1), samples: map[sampleKey][]sample{}, asked: map[int32]bool{}}
	k.table.Store(k.newTable(nil))
	k.caught.Store(new([]int32))
	if opts.Previous != nil {
		opts.Set.Set(heldBy(opts.Previous.Roles(opts.Self))...)
	} else {
		opts.Set.Set()
	}
	return k, nil
}

func heldBy(roles map[int32]cluster.Role) []int32 {
	out := make([]int32, 0, len(roles))
	for p := range roles {
		out = append(out, p)
	}
	slices.Sort(out)
	return out
}

// newTable is the table of map om with nothing answered here yet (the next
// Tick decides).
func (k *Keeper) newTable(om *cluster.OwnerMap) *table {
	n := k.opts.Partitions
	t := &table{om: om, roles: make([]cluster.Role, n), peers: make([][]string, n), parts: make([]partState, n)}
	for p := range t.parts {
		t.parts[p] = partState{lag: -1, stale: -1}
	}
	if om == nil {
		return t
	}
	for p, r := range om.Roles(k.opts.Self) {
		if int(p) < n {
			t.roles[p] = r
		}
	}
	for p := range min(n, om.Partitions) {
		for _, m := range om.Replicas(int32(p)) {
			if m.InstanceID != k.opts.Self {
				t.peers[p] = append(t.peers[p], m.Advertise)
			}
		}
	}
	return t
}

// Partitions is the partition count P (serving.Placement).
func (k *Keeper) Partitions() int { return k.opts.Partitions }

// Route says who answers partition p (serving.Placement): local when this
// node holds p in any role and is within MaxStaleness of its end; peers are
// the other replicas, the active first.
func (k *Keeper) Route(p int) (local bool, peers []string) {
	t := k.table.Load()
	if p < 0 || p >= len(t.parts) {
		return false, nil
	}
	return t.parts[p].local, t.peers[p]
}

// RouteWithin is Route for a lookup that accepts at most bound of
// staleness (serving.BoundedRouter): local only when this node's copy of p
// was last at the partition's end within bound (capped at MaxStaleness; a
// bound of 0 or less is MaxStaleness). A Keeper measures only its own
// copies, so peers are in the map's order, the active first.
func (k *Keeper) RouteWithin(p int, bound time.Duration) (local bool, peers []string) {
	t := k.table.Load()
	if p < 0 || p >= len(t.parts) {
		return false, nil
	}
	ps := &t.parts[p]
	if bound <= 0 || bound > k.opts.MaxStaleness {
		bound = k.opts.MaxStaleness
	}
	return ps.local && ps.stale <= bound, t.peers[p]
}

// CaughtUp returns the partitions this node holds within
// AcceptableRecoveryLag of their end offsets (cluster.Config.CaughtUp).
func (k *Keeper) CaughtUp() []int32 {
	return slices.Clone(*k.caught.Load())
}

// Ready returns ErrNoMap until the first owner map arrived.
func (k *Keeper) Ready() error {
	if k.table.Load().om == nil {
		return ErrNoMap
	}
	return nil
}

// Drain marks this node draining (cluster.Membership.Drain): its
// partitions move to other members as they catch up, and once it holds
// none Run makes it leave the group. It returns at once; Status says how
// far it got. It is a no-op before Run or after the first call.
func (k *Keeper) Drain() error {
	k.mu.Lock()
	m, already := k.mu.m, k.mu.draining
	if m == nil {
		k.mu.Unlock()
		return errors.New("replicas: drain: not running")
	}
	k.mu.draining = true
	k.mu.Unlock()
	if !already {
		m.Drain()
		select {
		case k.drainc <- struct{}{}:
		default:
		}
	}
	return nil
}

// Run follows m's owner maps and the consumers' positions until ctx ends.
// It is called once.
func (k *Keeper) Run(ctx context.Context, m Membership) {
	k.mu.Lock()
	k.mu.m = m
	k.mu.Unlock()
	tick := time.NewTicker(k.opts.Tick)
	defer tick.Stop()
	if k.opts.Handover != nil && k.opts.CheckpointInterval > 0 {
		var wg sync.WaitGroup
		defer wg.Wait()
		wg.Go(func() { k.checkpointLoop(ctx) })
	}
	om, changed := m.Current()
	if om != nil {
		k.adopt(ctx, om)
	}
	for {
		k.observe(time.Now())
		k.maybeLeave(ctx, m)
		select {
		case <-ctx.Done():
			return
		case <-changed:
			om, changed = m.Current()
			k.adopt(ctx, om)
		case <-tick.C:
		case <-k.drainc:
		}
	}
}

// adopt makes om the map: the partitions to consume (those adopted empty
// restored first, with a Handover), the routes, the saved copy. A restore
// holds up the Keeper's goroutine: the partitions already held go on being
// consumed and routed meanwhile, but the map's other changes wait.
func (k *Keeper) adopt(ctx context.Context, om *cluster.OwnerMap) {
	if om == nil {
		return
	}
	old := k.table.Load()
	t := k.newTable(om)
	// Keep answering what was answered until the next observe: the roles
	// may have changed, the state did not.
	for p := range t.parts {
		if old.roles[p] != cluster.RoleNone && t.roles[p] != cluster.RoleNone {
			t.parts[p] = old.parts[p]
		}
	}
	k.table.Store(t)
	roles := om.Roles(k.opts.Self)
	k.restoreNew(ctx, roles)
	k.opts.Set.Set(heldBy(roles)...)
	if k.opts.Actives != nil {
		var actives []int32
		for p, r := range roles {
			if r == cluster.RoleActive {
				actives = append(actives, p)
			}
		}
		k.opts.Actives.Set(actives...)
	}
	clear(k.asked)
	if k.opts.MapFile != "" {
		if err := SaveMap(k.opts.MapFile, om); err != nil {
			k.opts.Logger.Warn("cluster: save the owner map", "file", k.opts.MapFile, "err", err)
		}
	}
	counts := map[cluster.Role]int{}
	for _, r := range roles {
		counts[r]++
	}
	k.opts.Logger.Info("cluster: holding partitions", "generation", om.Generation,
		"active", counts[cluster.RoleActive], "standby", counts[cluster.RoleStandby], "warmup", counts[cluster.RoleWarmup])
}

// observe reads the consumers' positions and rebuilds the table's answers.
func (k *Keeper) observe(now time.Time) {
	old := k.table.Load()
	var status []ingest.ConsumerStatus
	if k.opts.Consumers != nil {
		status = k.opts.Consumers.Status()
	}
	n := k.opts.Partitions
	// pos[p] has one entry per source once that source reads p.
	pos := make([][]SourceOffset, n)
	for _, cs := range status {
		for _, ps := range cs.Partitions {
			if ps.Partition < 0 || ps.Partition >= n {
				continue
			}
			pos[ps.Partition] = append(pos[ps.Partition], SourceOffset{
				Source: cs.Source, Topic: cs.Topic, Reading: ps.Reading,
				Next: ps.NextOffset, High: ps.HighWatermark, Lag: ps.Lag,
			})
		}
	}
	t := &table{om: old.om, roles: old.roles, peers: old.peers, parts: make([]partState, n)}
	var caught []int32
	rebalance := false
	for p := range n {
		ps := partState{lag: -1, stale: -1, sources: pos[p]}
		if old.roles[p] != cluster.RoleNone || len(pos[p]) > 0 {
			ps.lag, ps.stale = k.measure(now, int32(p), pos[p], len(status))
		}
		held := old.roles[p] != cluster.RoleNone
		ps.caughtUp = held && ps.lag >= 0 && ps.lag <= k.opts.AcceptableRecoveryLag
		ps.local = held && ps.stale >= 0 && ps.stale <= k.opts.MaxStaleness
		if ps.caughtUp {
			caught = append(caught, int32(p))
			if old.roles[p] == cluster.RoleWarmup && !k.asked[int32(p)] {
				k.asked[int32(p)] = true
				rebalance = true
			}
		}
		t.parts[p] = ps
	}
	if old.om == nil {
		// Before the first map, the partitions consumed are the previous
		// map's: report them caught up when they are, so that the first
		// join keeps their roles.
		caught = caught[:0]
		if prev := k.opts.Previous; prev != nil {
			for _, p := range heldBy(prev.Roles(k.opts.Self)) {
				if int(p) < n {
					if lag, _ := k.measure(now, p, pos[p], len(status)); lag >= 0 && lag <= k.opts.AcceptableRecoveryLag {
						caught = append(caught, p)
					}
				}
			}
		}
	}
	k.caught.Store(&caught)
	k.table.Store(t)
	k.pruneSamples(now)
	if rebalance {
		k.mu.Lock()
		m := k.mu.m
		k.mu.Unlock()
		k.opts.Logger.Info("cluster: warm-up caught up; asking the group to rebalance", "generation", old.om.Generation)
		m.Rebalance()
	}
}

// measure returns partition p's lag (records behind on its most lagging
// source) and staleness (how long ago every source's end offset was last
// reached), or -1 for what is unknown: a source not reading p yet, or
// behind every end offset sampled within MaxStaleness. sources is how many
// Kafka sources there are; a partition must be read by all of them.
func (k *Keeper) measure(now time.Time, p int32, pos []SourceOffset, sources int) (lag int64, stale time.Duration) {
	if len(pos) < sources {
		return -1, -1
	}
	for _, so := range pos {
		if !so.Reading {
			return -1, -1
		}
		lag = max(lag, so.Lag)
		key := sampleKey{so.Source, p}
		ss := k.samples[key]
		if len(ss) == 0 || ss[len(ss)-1].high != so.High {
			ss = append(ss, sample{at: now, high: so.High})
			k.samples[key] = ss
		}
		// The newest time the end offset was at or below where this
		// replica is now: everything the partition held then is applied.
		reached := time.Time{}
		if so.Next >= so.High {
			reached = now
		} else {
			for i := len(ss) - 1; i >= 0; i-- {
				if ss[i].high <= so.Next {
					// The end stayed at ss[i].high until the next sample.
					if i+1 < len(ss) {
						reached = ss[i+1].at
					} else {
						reached = now
					}
					break
				}
			}
		}
		if reached.IsZero() {
			stale = -1
			continue
		}
		if stale >= 0 {
			stale = max(stale, now.Sub(reached))
		}
	}
	return lag, stale
}

// pruneSamples drops end offsets sampled longer ago than MaxStaleness plus
// a margin, keeping the newest of each partition.
func (k *Keeper) pruneSamples(now time.Time) {
	cut := now.Add(-k.opts.MaxStaleness - 2*k.opts.Tick)
	for key, ss := range k.samples {
		i := 0
		for i < len(ss)-1 && ss[i+1].at.Before(cut) {
			i++
		}
		if i > 0 {
			k.samples[key] = slices.Clone(ss[i:])
		}
	}
}

// maybeLeave leaves the group once a draining node holds nothing.
func (k *Keeper) maybeLeave(ctx context.Context, m Membership) {
	k.mu.Lock()
	leave := k.mu.draining && !k.mu.left
	k.mu.Unlock()
	if !leave {
		return
	}
	t := k.table.Load()
	if t.om == nil || len(t.om.Roles(k.opts.Self)) > 0 {
		return
	}
	lctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	err := m.Leave(lctx)
	cancel()
	k.mu.Lock()
	k.mu.left = true
	if err != nil {
		k.mu.leaveErr = err.Error()
	}
	k.mu.Unlock()
	k.opts.Set.Set()
	if k.opts.Actives != nil {
		k.opts.Actives.Set()
	}
	if err != nil {
		k.opts.Logger.Error("cluster: drained; leaving the group failed (the broker removes the member after the session timeout)", "err", err)
		return
	}
	k.opts.Logger.Info("cluster: drained and left the group; this node holds no partition and may be stopped")
}

// SaveMap writes om to path atomically (a temporary file renamed over it).
func SaveMap(path string, om *cluster.OwnerMap) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, om.Encode(), 0o644); err != nil {
		return fmt.Errorf("save owner map: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("save owner map: %w", err)
	}
	return nil
}

// LoadMap reads the owner map SaveMap wrote to path; nil and no error when
// there is none.
func LoadMap(path string) (*cluster.OwnerMap, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("load owner map: %w", err)
	}
	om, err := cluster.DecodeOwnerMap(b)
	if err != nil {
		return nil, fmt.Errorf("load owner map %s: %w", filepath.Base(path), err)
	}
	return om, nil
}
