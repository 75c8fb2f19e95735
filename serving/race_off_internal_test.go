//go:build !race

package serving

const raceOn = false
