//go:build !linux

package archive

import (
	"errors"
	"fmt"
)

// DiskUsage is not implemented on this platform; it returns an error.
func DiskUsage(dir string) (free, size uint64, err error) {
	return 0, 0, fmt.Errorf("archive: disk usage %s: %w", dir, errors.ErrUnsupported)
}
