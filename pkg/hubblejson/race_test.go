//go:build race

package hubblejson_test

const raceEnabled = true
