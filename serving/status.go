package serving

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/featured-dev/featured/featurestore"
	"github.com/featured-dev/featured/ingest"
	"github.com/featured-dev/featured/internal/diskguard"
	"github.com/featured-dev/featured/offline/eventlog"
)

// KafkaStatus is what GET /v1/status reads of the Kafka ingest
// (*ingest.Kafka). Its methods are called from request goroutines,
// concurrently.
type KafkaStatus interface {
	Stats() []ingest.SourceStats
	Status() []ingest.ConsumerStatus
	Ready() error
}

var _ KafkaStatus = (*ingest.Kafka)(nil)

// OfflineLogStatus is what GET /v1/status reads of the offline log
// (*eventlog.Log). Stats is called from request goroutines, concurrently.
type OfflineLogStatus interface {
	Stats() []eventlog.ShardStats
}

var _ OfflineLogStatus = (*eventlog.Log)(nil)

// ClusterNode is what the server reads of a node's part in a cluster
// (cmd/featured adapts cluster/replicas.Keeper). Its methods are called
// from request goroutines, concurrently.
type ClusterNode interface {
	// ClusterStatus is the "cluster" section of GET /v1/status, encoded
	// with encoding/json.
	ClusterStatus() any
	// Drain starts draining the node (POST /v1/cluster/drain): its
	// partitions move to other members, then it leaves the group. It
	// returns at once; ClusterStatus shows the progress.
	Drain() error
}

// viewFreshness is one view version's line of GET /v1/status.
type viewFreshness struct {
	View              string  `json:"view"`
	Version           int     `json:"version"`
	Source            string  `json:"source"`
	LatestEventMillis int64   `json:"latest_event_millis"`
	FreshnessSeconds  float64 `json:"freshness_seconds"`
}

// statusBody is the JSON of GET /v1/status.
type statusBody struct {
	Push    []ingest.SourceStats      `json:"push"`
	Kafka   []ingest.SourceStats      `json:"kafka"`
	Topics  []ingest.ConsumerStatus   `json:"consumers"`
	Views   []viewFreshness           `json:"views"`
	Shards  []featurestore.ShardStats `json:"shards"`
	Ready   bool                      `json:"kafka_ready"`
	Problem string                    `json:"kafka_problem,omitempty"`
	Disk    *diskguard.Status         `json:"disk,omitempty"`
	// OfflineLog is per shard: WAL bytes cut after a crash, committed
	// bytes lost to a power loss, and quarantined (damaged) files.
	OfflineLog []eventlog.ShardStats `json:"offline_log,omitempty"`
	// Cluster is Options.Cluster's status: the owner map, this node's
	// role, offsets and lag per partition, forwarding counters.
	Cluster any `json:"cluster,omitempty"`
}

// handleStatus serves GET /v1/status: ingest counters, Kafka consumers with
// per-partition lag, per-view freshness, and store counters. It answers
// while not ready too: it is how an operator sees why.
func (s *Server) handleStatus(w http.ResponseWriter, r *http.Request) {
	now := time.Now()
	st := statusBody{Push: s.pusher.Stats(), Shards: s.store.Stats(), Ready: true}
	if s.opts.Disk != nil {
		ds := s.opts.Disk.Status()
		st.Disk = &ds
	}
	if s.opts.OfflineLog != nil {
		st.OfflineLog = s.opts.OfflineLog.Stats()
	}
	if s.opts.Cluster != nil {
		st.Cluster = s.opts.Cluster.ClusterStatus()
	}
	latest := map[string]int64{}
	for _, ss := range st.Push {
		latest[ss.Source] = max(latest[ss.Source], ss.LatestEventMillis)
	}
	if k := s.opts.Kafka; k != nil {
		st.Kafka = k.Stats()
		st.Topics = k.Status()
		if err := k.Ready(); err != nil {
			st.Ready = false
			st.Problem = err.Error()
		}
		for _, ss := range st.Kafka {
			latest[ss.Source] = max(latest[ss.Source], ss.LatestEventMillis)
		}
	}
	for _, v := range s.reg.Snapshot().Views() {
		vf := viewFreshness{View: v.Name, Version: v.Version, Source: v.Source.Name, LatestEventMillis: latest[v.Source.Name]}
		if vf.LatestEventMillis > 0 {
			vf.FreshnessSeconds = now.Sub(time.UnixMilli(vf.LatestEventMillis)).Seconds()
		}
		st.Views = append(st.Views, vf)
	}
	body, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, append(body, '\n'))
}

// handleDrain serves POST /v1/cluster/drain: the node starts draining and
// the answer is 202 with the cluster status; GET /v1/status shows when it
// holds nothing and has left the group.
func (s *Server) handleDrain(w http.ResponseWriter, r *http.Request) error {
	if err := s.opts.Cluster.Drain(); err != nil {
		return fmt.Errorf("%w: %v", ErrNotReady, err)
	}
	body, err := json.MarshalIndent(s.opts.Cluster.ClusterStatus(), "", "  ")
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusAccepted, append(body, '\n'))
	return nil
}
