package aggregate

// Internals exported to the external tests.
var (
	AddSat   = addSat
	SubSat   = subSat
	FloorDiv = floorDiv
)
