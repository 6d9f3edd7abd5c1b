package main

import (
	"testing"

	"go.uber.org/goleak"
)

// filter, import and run start goroutines (readers, workers, the signal
// and config watchers): none may outlive the command.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
