package archive

import (
	"testing"

	"go.uber.org/goleak"
)

// The archive's scans run workers (scan.go): none may outlive its call.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
