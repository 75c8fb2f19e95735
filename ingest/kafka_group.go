package ingest

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
)

// commitGroups commits, every KafkaOptions.GroupCommitInterval until ctx
// ends, each partition's applied offset (the offset the store committed
// with the state) to the consumer group GroupPrefix+<source>, so that
// standard lag tools (kafka-consumer-groups, Burrow, KEDA, the collector's
// kafkametrics) see featured's progress. The group is information only:
// nothing reads it back, the store's offsets stay the truth, and a failed
// commit is logged and retried on the next tick.
func (k *Kafka) commitGroups(ctx context.Context) {
	t := time.NewTicker(k.opts.GroupCommitInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := k.commitGroupsOnce(ctx); err != nil && ctx.Err() == nil {
			k.opts.Logger.Warn("commit offsets to the informational consumer groups", "err", err)
		}
	}
}

func (k *Kafka) commitGroupsOnce(ctx context.Context) error {
	var errs []error
	for _, cs := range k.Status() {
		commits := kadm.Offsets{}
		stored := map[string]map[int32]int64{}
		for _, p := range cs.Partitions {
			if !k.opts.GroupPartitions.Contains(int32(p.Partition)) {
				continue
			}
			name := cs.Source + "/" + cs.Topic
			if p.OffsetEpoch > 0 {
				name += fmt.Sprintf("#%d", p.OffsetEpoch)
			}
			offs, ok := stored[name]
			if !ok {
				offs = k.store.Offsets(name)
				stored[name] = offs
			}
			if off, ok := offs[int32(p.Partition)]; ok {
				commits.Add(kadm.Offset{Topic: cs.Topic, Partition: int32(p.Partition), At: off, LeaderEpoch: -1})
			}
		}
		if len(commits) == 0 {
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		// An admin commit (generation -1): a group with no members takes
		// commits from anyone.
		resp, err := k.adm.CommitOffsets(cctx, k.opts.GroupPrefix+cs.Source, commits)
		cancel()
		if err != nil {
			errs = append(errs, fmt.Errorf("group %s%s: %w", k.opts.GroupPrefix, cs.Source, err))
			continue
		}
		resp.Each(func(r kadm.OffsetResponse) {
			if r.Err != nil {
				errs = append(errs, fmt.Errorf("group %s%s partition %d: %w", k.opts.GroupPrefix, cs.Source, r.Partition, r.Err))
			}
		})
	}
	return errors.Join(errs...)
}
