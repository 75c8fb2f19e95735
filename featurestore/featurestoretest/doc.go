// Package featurestoretest holds test doubles for featurestore's outside
// hooks: FailLog, an in-memory featurestore.EventLog that fails the commits
// a test asks it to, to reproduce a disk that refuses a write or an fsync.
package featurestoretest
