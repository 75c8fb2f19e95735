// Package lint holds repository-wide checks that run as tests: the import
// direction of the layout (STYLE.md: cmd -> {serving, ingest, offline} ->
// {featurestore, registry} -> aggregate).
package lint
