// Package offline owns featured's offline log and point-in-time export.
//
// Placeholder doc; the full package documentation is written with the
// export.
package offline
