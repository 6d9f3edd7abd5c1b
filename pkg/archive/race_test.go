//go:build race

package archive

// raceEnabled: the race detector slows these tests ~10x.
const raceEnabled = true
