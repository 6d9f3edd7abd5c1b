package main

import (
	"testing"

	"go.uber.org/goleak"
)

// filter, import and run start goroutines (readers, workers, the signal
// and config watchers): none may outlive the command. lumberjack (gen
// --out) never stops its compression goroutine.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("gopkg.in/natefinch/lumberjack%2ev2.(*Logger).millRun"))
}
