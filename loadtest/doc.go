// Command loadtest is featured's load generator, and its peers': it drives
// featured over gRPC and HTTP (the Feast endpoint and the native one),
// Feast's feature server, raw Redis (HMGET/HGETALL), and featured's push
// ingest, with the same pre-built requests, and writes a JSON result per
// run. `make bench-compare` runs it against each system in turn
// (scripts/bench-compare.sh) and renders docs/benchmarks-compare.md with
// `loadtest report`. Nothing in featured imports it.
//
//	go run ./loadtest run -target grpc -addr 127.0.0.1:9090 -rate 5000 -duration 10s -out r.json
//	go run ./loadtest run -target feast-http -addr 127.0.0.1:8080 -entities 100 -conns 16
//	go run ./loadtest run -target grpc -addr 127.0.0.1:9091,127.0.0.1:9092,127.0.0.1:9093
//
// Several addresses are one system's nodes (a featured cluster): the
// connections are spread over them in turn and each node's first answer is
// verified (spread.go; scripts/bench/cluster.sh runs 3 nodes against 1).
//
// # What it owns
//
//   - The workload (workload.go): feast-benchmarks' shape unchanged (10k
//     int64 entities, 25 views of 10 int64 features, feature services of
//     the first 50..250 features, 1..100 entities per request, Feast's
//     request body), with every value a formula of (entity, feature) so
//     that loaders and the verifier agree without a shared file. featured's
//     definitions of it (`loadtest defs`), as `last` values or as sums over a
//     1-day window, plus the ingest view (three windows).
//   - Loaders: featured by push, Redis by pipelined HSET (`loadtest load`).
//     Feast loads a Parquet file written by scripts/bench/feast_data.py.
//   - Runs (runner.go). Closed loop: each of -conns workers sends its next
//     request when the last is answered; this finds the maximum
//     throughput. Open loop (-rate): a pacer schedules request k at
//     start + k/rate and hands it to the next free worker; latency is
//     counted from the scheduled time, so a server that stalls is charged
//     for every request it held up (no coordinated omission), and the
//     pacer's own lateness is measured separately (pacer lag). The pacer
//     sleeps in nanosleep(2) on a locked thread with 1 ns timer slack: Go's
//     timers wake up to 1 ms late on an idle process (pace_linux.go).
//     Both loops warm up unrecorded, measure for -duration, and (open loop)
//     drain for at most -drain, counting what could not be sent as unsent.
//   - Latency histograms: HDR (github.com/HdrHistogram/hdrhistogram-go),
//     nanoseconds, 3 significant digits, one per worker, merged at the end.
//   - Cheap clients (the generator shares 2 cores with the server under
//     test): a hand-written HTTP/1.1 keep-alive client that writes pre-built
//     requests and skips bodies (httpraw.go); RESP written by hand with
//     replies walked, not decoded (resp.go); gRPC through grpc-go with a
//     pass-through codec, so no protobuf work per call (target.go).
//   - Verification (verify.go): before each run, one answer is decoded in
//     full and every value compared with the formula; a system that lost
//     its data fails the run instead of looking fast.
//   - The result file (result.go), progress lines, CPU accounting (this
//     process by getrusage, the server's processes from /proc), suites
//     (suite.go: the compare matrix for one system) and the report with its
//     chart (report.go, chart.go).
//
// # Concurrency
//
// A run owns its goroutines: one per connection, the pacer (open loop), the
// CPU meter and the progress printer; Run returns after all have stopped.
// Each worker owns its connection and its histograms; the progress printer
// reads a worker's interval counters under the worker's mutex once a
// second. gRPC workers share -grpc-conns client connections.
//
// # Result file
//
// One JSON object per run (Result): label, target, workload, mode, offered
// and achieved rates, requests, errors (with samples), unsent, response
// bytes, latency_us {count,min,mean,p50,p90,p99,p999,max}, send_lag_us and
// pacer_lag_us (open loop), client_cpu and server_cpu {seconds, cores,
// us_per_request}, and the host (Go version, CPUs, load average at start).
// ReadResult refuses unknown fields.
package main
