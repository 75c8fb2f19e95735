// Package serving is featured's front door: online lookups, push ingest and
// registry changes over HTTP (chi) and gRPC (featured.v1, and Feast's
// feast.serving lookup), and the one place
// where errors become status codes (errors.go: errors.Is against one table,
// to an HTTP status and a gRPC code).
//
// # What it owns
//
//   - The lookup hot path. A lookup names features ("view:feat", pinned
//     "view@v2:feat", or a feature service) and a column of entity keys under
//     one join key. The body is decoded by a small hand-written decoder for
//     exactly this shape (decode.go; no reflection, strings copied into one
//     pooled arena). The feature list is resolved against the registry
//     snapshot into a plan: output columns plus one read group per view
//     version; plans are cached per snapshot (copy-on-write map, lock-free
//     reads), so a repeated request resolves nothing. Then one
//     featurestore.Store.Read per (entity, view version), and the response
//     is written by append-style encoders (encode.go, response.go) into a
//     pooled buffer: no per-value allocation.
//     Why hand-written rather than a library: encoding/json reflects and
//     allocates a string per reference and an interface per entity key
//     (about 10x slower on this shape, see BenchmarkDecodeLookup);
//     valyala/fastjson (which ingest uses) parses without allocating but
//     reports neither the byte offset nor the field path that a 400 here
//     must name. The decoder is ~600 lines for one fixed shape and is fuzzed
//     against encoding/json (FuzzDecodeLookup) and end to end
//     (FuzzFeastLookup).
//   - POST /get-online-features: Feast's request and column-major response,
//     field for field, so Feast clients and the feast-benchmarks workload run
//     unchanged. Decisions where Feast leaves room: floats are written in the
//     shortest form that round-trips and always as floats ("12.0"); a
//     non-finite float (a float sum can overflow) is null with status
//     INVALID; timestamps are RFC 3339 UTC with Z, with three fractional
//     digits only when the milliseconds are not zero (protobuf's JSON
//     mapping); a value with no state (NOT_FOUND) has the epoch as its
//     timestamp. Any Content-Type is accepted, as Feast's server does (curl
//     -d sends a form type). Unknown request fields are ignored, as Feast's
//     server does; features and feature_service together are rejected
//     (Feast silently prefers the service). Duplicate output names are
//     rejected, as Feast's FeatureNameCollisionError does. As Feast's server
//     does (entities.go): features of several entities are joined per row,
//     each view reading its own join key's column; a join key of another
//     entity is returned as an extra column and a key no entity has is
//     ignored; entity columns come first, in the order sent; a decimal
//     string for an int64 key is that integer;
//     include_feature_view_version_metadata fills
//     metadata.feature_view_metadata. Errors on this endpoint are Feast's:
//     a JSON string holding {"module","class","message"} with the class
//     Feast raises (feast_errors.go), featured's error under "error".
//   - Feast's gRPC service, feast.serving.ServingService (api/feast,
//     feast_grpc.go): GetOnlineFeatures is POST /get-online-features over
//     gRPC (the same lookupDecoded with Feast's rules, the same columns as
//     Feast's messages; key columns in the order of their names, since a
//     protobuf map has none; errors as featured's gRPC codes), and
//     GetFeastServingInfo answers Options.Version. It has featured.v1
//     lookup's scope (read) and class (lookups).
//   - POST /v1/features: the same request, a row-major response for model
//     servers (one object per entity with values[i] for features[i]); see
//     response.go. It serves one entity per request, keyed as the entity's
//     type says, and answers errors in featured's shape.
//   - Feast's push API (feast_push.go): POST /push (push_source_name, a
//     columnar df, to) pushes the df's rows as events of that featured push
//     source; POST /write-to-online-store (feature_view_name, df), which is
//     what the Feast SDK's remote online store sends for FeatureStore.push
//     and write_to_online_store, pushes them into the view's source when
//     the view only passes fields through (every feature the lifetime last
//     of the field of its name), and refuses any other view, naming its
//     aggregates. Both go through ingest.Pusher like POST /v1/push (write
//     scope, push class, --max-push-events, the body limit), atomically,
//     since a Feast client reads no per-row result: one bad cell and
//     nothing is written, each bad cell named as df.column[row]. Event
//     times may be naive (UTC, as Feast reads them); to: offline is refused
//     (featured writes its offline log with every push and has no
//     offline-only write). Errors are in Feast's shape, as on
//     /get-online-features.
//   - Push, apply/plan/delete and the registry listing, over both HTTP and
//     gRPC. Deleting a view (or one version) also drops its stored state.
//     POST /v1/apply?backfill=true then builds every ingested view version
//     the apply created from the offline log, through Options.Backfill (the
//     caller wires offline.Backfill; serving reads no log itself), and
//     answers each version's entity count beside the plan. A failed
//     backfill leaves the apply in place: the answer is a 5xx whose error
//     names the versions to rerun with `featured backfill VIEW@vN`, and
//     still carries the plan. gRPC Apply has no such option.
//   - The rest of the HTTP address, so that it is one router: GET
//     /v1/status (status.go), the probes /livez, /healthz and /readyz with
//     named checks (health.go), the offline routes whose handlers the caller
//     passes in Options.Offline, and pprof when Options.Pprof.
//
// # Routing
//
// With Options.Placement set (a node of a cluster; docs/scaling.md,
// Routing), every lookup path (native HTTP and gRPC, Feast's HTTP and gRPC)
// routes its rows: each (row, join key) is placed by entityPartition
// (Kafka's partitioner over the key's record-key bytes, route.go), the
// partitions this node answers are read here as without a cluster, and
// the others go in one featured.internal.v1.PeerService/Read per peer, in
// parallel, each within min(the caller's deadline,
// Options.ForwardTimeout). A peer that refuses, times out or is
// unavailable is marked down for a second (tried after the other replicas
// meanwhile) and its partitions retried on their next replica; a partition
// with none left fails the lookup with
// 503 / UNAVAILABLE naming it (*PartitionError), never NOT_FOUND. The
// owner (peer.go) re-resolves the request's view versions against its own
// snapshot, refuses another registry generation with FAILED_PRECONDITION
// (the front node tries the next replica), checks the forwarded bearer
// token as it would locally, reads only partitions it answers itself and
// never forwards (one hop). Answers carry the positions of the partitions
// they read: "positions" in native JSON and gRPC responses, the
// Featured-Positions header (featured-positions metadata over gRPC) for
// Feast's. A lookup may carry its own staleness bound (staleness.go:
// max_staleness_ms, Featured-Max-Staleness, featured-max-staleness): a
// Placement that is a BoundedRouter routes it with RouteWithin, the bound
// travels to the owner, which answers a partition staler than it as
// unavailable. Without a Placement none of this runs (a bound is accepted
// and ignored) and responses are byte for byte what they were.
// RouterStats counts forwards for metrics.
// Options.Cluster adds the node's cluster section to GET /v1/status and
// serves POST /v1/cluster/drain.
//
// # Middleware
//
// Every HTTP route runs behind one stack, in this order: panic recovery ->
// Options.Middleware.Metrics -> Options.Middleware.Auth -> the route's scope
// check -> the route's class limit (limits.go) -> handler. The gRPC chain
// (GRPCServerOptions) is the same: recovery -> Options.Interceptors.Metrics
// -> .Auth -> the method's scope -> limits.
//
// # Auth
//
// AuthMiddleware and AuthInterceptor fill the Auth slots from an
// internal/auth Keyring: they say who calls (401 / Unauthenticated) and
// apply the caller's rate and concurrency (429 / ResourceExhausted). The
// scope each route and method needs is this package's (auth.go): lookups
// and registry reads need read, pushes write, everything else admin, the
// probes nothing; a lookup by a view-limited token is checked after its
// refs resolve, naming the view refused (403 / PermissionDenied). With the
// slots empty, requests carry no identity and nothing is checked. Registry
// changes and offline jobs are logged as "audit" lines naming the caller,
// and applies and deletes are kept in the registry's history (GET
// /v1/registry/history).
//
// # Concurrency
//
// A Server is safe for concurrent use by any number of requests. It starts no
// goroutine and owns no listener: the caller serves HTTPHandler and a
// grpc.Server built with GRPCServerOptions on which it called RegisterGRPC,
// and stops them before calling Close (which closes the connections to
// peers a routed lookup opened) and closing the store. SetReady may be called at any time from any goroutine.
// Lookups never block on writers (featurestore's contract) nor on each other
// (the plan cache is read with one atomic load).
//
// # Errors
//
// Every error of every route, offline routes, 404 and 405 included, goes
// through one writer and errors.go's table, the only map from an error to an
// HTTP status and a gRPC code. Bad requests get a JSON body naming every bad
// item:
//
//	{"error":{"status":400,"message":"serving: bad request: ...",
//	  "problems":[{"field":"features[1]","value":"user_spend:nope","reason":"unknown feature ..."}]}}
//
// 400 for malformed JSON (naming the byte offset and field), unknown
// features, views, versions or services in a lookup, an entity key that is
// not the views' join key, and requests over Options' limits; 413 for a body
// over MaxBodyBytes; 415 for a Content-Type an endpoint does not read; 404
// for unknown sources, views or services addressed directly (push, delete);
// 422 for an atomic push with rejected events; 503 while not ready, and for
// an atomic push journaled but not yet committed by every shard (its
// batch_id in the body; a retry with it is safe). gRPC gets
// the matching codes (InvalidArgument, ResourceExhausted, NotFound,
// Unavailable, ...); context errors pass through as Canceled and
// DeadlineExceeded. POST /v1/apply?backfill= takes true or false (400
// otherwise, and 400 for true on a server without Options.Backfill), both
// checked before anything is applied; a backfill failing after the apply is
// a 500 (499 or 504 for a canceled or expired request) whose body is the
// error object plus the apply's answer:
//
//	{"error":{"status":500,"message":"serving: the definitions are applied, but backfilling failed for
//	   view user_spend v2 (...); rerun `featured backfill user_spend@v2`"},
//	 "changes":[...],"text":"~ view user_spend v1 -> v2: ...",
//	 "backfills":[{"view":"user_spend","version":2,"entities":0,"error":"..."}]}
package serving
