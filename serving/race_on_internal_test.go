//go:build race

package serving

// raceOn is raceEnabled for the package's internal tests.
const raceOn = true
