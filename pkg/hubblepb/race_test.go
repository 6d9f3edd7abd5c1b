//go:build race

package hubblepb_test

const raceEnabled = true
