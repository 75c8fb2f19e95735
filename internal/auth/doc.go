// Package auth owns who may call featured: the token file (tokens stored
// only as SHA-256 digests, or client-certificate subjects), the scopes and
// views each caller holds, and each caller's rate and concurrency limits.
//
// A Keyring is loaded from the token file and re-reads it when the file's
// modification time or size changes, checked at most once per
// Options.ReloadEvery on the request path (no goroutine of its own). A file
// that fails to load on a reload leaves the previous tokens in force and is
// logged; a file that fails at Open is an error. A Keyring and the
// Identities it returns are safe for concurrent use.
//
// The package knows nothing of HTTP or gRPC: serving reads the bearer token
// or the verified client certificate, asks Identify, and puts the Identity
// in the request's context (NewContext) for the route's scope check and
// the lookup's view check.
package auth
