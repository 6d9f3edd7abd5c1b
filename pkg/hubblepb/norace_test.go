//go:build !race

package hubblepb_test

const raceEnabled = false
