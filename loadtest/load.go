package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"
)

// Loading the workload's data (every entity of the keyspace, every feature
// Value) into featured (push) and Redis (hashes). Feast gets the same rows
// from a Parquet file written by scripts/bench_feast_data.py.

// loadFeatured pushes one event per entity of [0, keyspace) into the workload's push source
// (defined by Definitions), batch events per push, stamped a minute ago. Atomic pushes are
// all-or-nothing per batch; a cluster's scripts/bench/cluster.sh loads without them: there
// each atomic push is a Kafka transaction whose commit marker ends the partition (see
// docs/benchmarks.md, "Throughput of 3 nodes against 1").
func loadFeatured(ctx context.Context, addr string, batch, keyspace int, atomic bool, now time.Time) (int, error) {
	if batch < 1 || batch > 10_000 {
		return 0, fmt.Errorf("loadtest: -batch: %d is not in [1, 10000]", batch)
	}
	client := &http.Client{Timeout: 2 * time.Minute}
	ts := now.Add(-time.Minute).UnixMilli()
	loaded := 0
	var b []byte
	for first := int64(0); first < int64(keyspace); first += int64(batch) {
		last := min(first+int64(batch), int64(keyspace))
		b = append(b[:0], `{"source":"`+SourceName+`","atomic":`+strconv.FormatBool(atomic)+`,"events":[`...)
		for e := first; e < last; e++ {
			if e > first {
				b = append(b, ',')
			}
			b = append(b, `{"`+EntityKey+`":`...)
			b = strconv.AppendInt(b, e, 10)
			b = append(b, `,"`+TimeField+`":`...)
			b = strconv.AppendInt(b, ts, 10)
			for f := range MaxFeatures {
				b = append(b, `,"feature_`...)
				b = strconv.AppendInt(b, int64(f), 10)
				b = append(b, `":`...)
				b = strconv.AppendInt(b, Value(e, f), 10)
			}
			b = append(b, '}')
		}
		b = append(b, "]}"...)
		req, err := http.NewRequestWithContext(ctx, "POST", "http://"+addr+"/v1/push", bytes.NewReader(b))
		if err != nil {
			return loaded, err
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			return loaded, fmt.Errorf("loadtest: push to %s: %w", addr, err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return loaded, err
		}
		if resp.StatusCode != http.StatusOK {
			return loaded, fmt.Errorf("loadtest: push to %s: %s: %.300s", addr, resp.Status, body)
		}
		acc, err := acceptedCount(body)
		if err != nil {
			return loaded, err
		}
		if acc != int(last-first) {
			return loaded, fmt.Errorf("loadtest: push to %s: %d of %d accepted: %.300s", addr, acc, last-first, body)
		}
		loaded += acc
	}
	return loaded, nil
}

// loadRedis writes the Redis layout (target.go: redisEntityKey,
// redisViewKey) with pipelined HSETs, batch entities per round trip.
func loadRedis(addr string, batch, keyspace int) (int, error) {
	if batch < 1 || batch > 10_000 {
		return 0, fmt.Errorf("loadtest: -batch: %d is not in [1, 10000]", batch)
	}
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return 0, fmt.Errorf("loadtest: dial redis %s: %w", addr, err)
	}
	defer c.Close()
	r := respReader{br: bufio.NewReaderSize(c, 64<<10)}
	args := make([]string, 0, 2+2*MaxFeatures)
	var b []byte
	loaded := 0
	for first := int64(0); first < int64(keyspace); first += int64(batch) {
		last := min(first+int64(batch), int64(keyspace))
		b = b[:0]
		cmds := 0
		for e := first; e < last; e++ {
			args = append(args[:0], "HSET", redisEntityKey(e))
			for f := range MaxFeatures {
				args = append(args, FeatureName(f), strconv.FormatInt(Value(e, f), 10))
			}
			b = appendCommand(b, args...)
			cmds++
			for v := range Views {
				args = append(args[:0], "HSET", redisViewKey(v, e))
				for j := range FeaturesPerView {
					f := v*FeaturesPerView + j
					args = append(args, FeatureName(f), strconv.FormatInt(Value(e, f), 10))
				}
				b = appendCommand(b, args...)
				cmds++
			}
		}
		if err := c.SetDeadline(time.Now().Add(time.Minute)); err != nil {
			return loaded, err
		}
		if _, err := c.Write(b); err != nil {
			return loaded, fmt.Errorf("loadtest: write to redis: %w", err)
		}
		for range cmds {
			if err := r.skipReply(0); err != nil {
				return loaded, fmt.Errorf("loadtest: redis HSET: %w", err)
			}
		}
		loaded += int(last - first)
	}
	return loaded, nil
}
