package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"

	"github.com/twmb/franz-go/pkg/kadm"
)

// offsetName is the name of the source's offsets in the store in the given
// epoch (see Kafka): a topic name has no '#', a source name no '/' or '#'.
func (c *topicConsumer) offsetName(epoch int32) string {
	if epoch == 0 {
		return c.offsetTopic
	}
	return c.offsetTopic + "#" + strconv.Itoa(int(epoch))
}

// startOffset decides where the partition's reader starts: the offset
// stored with the state, checked against the partition's first and end
// offsets on the broker before anything is fetched (see Kafka for the
// policy).
func (pc *partitionConsumer) startOffset(ctx context.Context, log *slog.Logger) (int64, error) {
	c := pc.c
	first, end, err := pc.offsets(ctx)
	if err != nil {
		return 0, fmt.Errorf("list offsets: %w", err)
	}
	pc.high.Store(end)
	if !pc.probed {
		pc.epoch.Store(pc.storedEpoch())
		pc.probed = true
	}
	epoch := pc.epoch.Load()
	// The fence first: a commit that fails after it moves it, whether or
	// not the offsets read next already saw the failure.
	pc.fence = c.k.store.Fence(c.offsetName(epoch), int32(pc.partition))
	stored, ok := c.k.store.Offsets(c.offsetName(epoch))[int32(pc.partition)]
	switch {
	case !ok && epoch > 0:
		// A reset whose first batch is not committed yet: read from the
		// start again; shards skip the events they already applied.
		return first, nil
	case !ok && pc.began.set:
		// Rewound before the first commit: back to where reading began.
		return max(pc.began.offset, first), nil
	case !ok && c.latest:
		pc.began.offset, pc.began.set = end, true
		return end, nil
	case !ok:
		return first, nil
	case stored > end:
		pc.reset(log, stored, first, end)
		return first, nil
	case stored < first:
		// Retention removed offsets this source never applied. Count it
		// and say so.
		pc.skipped.Add(first - stored)
		log.Warn("stored offset is gone from the topic; resuming at the earliest offset",
			"stored", stored, "earliest", first, "lost", first-stored)
		return first, nil
	}
	return stored, nil
}

// storedEpoch returns the highest offset epoch the store has a complete
// record of for the partition. Epoch e+1 is only ever started from a
// complete record of epoch e, so the epochs on record are contiguous.
func (pc *partitionConsumer) storedEpoch() int32 {
	var e int32
	for {
		if _, ok := pc.c.k.store.Offsets(pc.c.offsetName(e + 1))[int32(pc.partition)]; !ok {
			return e
		}
		e++
	}
}

// reset moves the partition to a new offset epoch after its next offset
// was found past the partition's end offset.
func (pc *partitionConsumer) reset(log *slog.Logger, next, first, end int64) {
	epoch := pc.epoch.Add(1)
	pc.resets.Add(1)
	pc.fence = pc.c.k.store.Fence(pc.c.offsetName(epoch), int32(pc.partition))
	pc.setErr(fmt.Errorf("offset %d is past the partition's end offset %d (topic recreated or truncated): reading again from its earliest offset %d, offsets kept as %q",
		next, end, first, pc.c.offsetName(epoch)))
	log.Error("stored offset is past the partition's end offset: the topic was recreated or truncated; resuming at the earliest offset",
		"stored", next, "end", end, "earliest", first, "offset_epoch", epoch)
}

// errOffsetCheck is returned by receive when the partition's offsets are
// to be checked: no message for OffsetCheck.
var errOffsetCheck = errors.New("ingest: check partition offsets")

// checkOffsets compares the partition's next offset with its offsets on
// the broker. When the next offset is past the end it resets the partition
// and returns its first offset and true.
func (pc *partitionConsumer) checkOffsets(ctx context.Context, log *slog.Logger) (int64, bool, error) {
	first, end, err := pc.offsets(ctx)
	if err != nil {
		return 0, false, err
	}
	pc.high.Store(end)
	if next := pc.next.Load(); next > end {
		pc.reset(log, next, first, end)
		return first, true, nil
	}
	return 0, false, nil
}

// offsets returns the partition's first offset and its end offset (the
// high watermark: the offset the next message will get).
func (pc *partitionConsumer) offsets(ctx context.Context) (first, end int64, err error) {
	return partitionOffsets(ctx, pc.c.k.adm, pc.c.topic, int32(pc.partition))
}

func partitionOffsets(ctx context.Context, adm *kadm.Client, topic string, partition int32) (first, end int64, err error) {
	starts, err := adm.ListStartOffsets(ctx, topic)
	if err != nil {
		return 0, 0, err
	}
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		return 0, 0, err
	}
	s, ok1 := starts.Lookup(topic, partition)
	e, ok2 := ends.Lookup(topic, partition)
	switch {
	case !ok1 || !ok2:
		return 0, 0, fmt.Errorf("no offsets for partition %d", partition)
	case s.Err != nil:
		return 0, 0, s.Err
	case e.Err != nil:
		return 0, 0, e.Err
	}
	return s.Offset, e.Offset, nil
}
