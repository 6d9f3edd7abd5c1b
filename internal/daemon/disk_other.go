//go:build !unix

package daemon

import "errors"

func diskUsage(string) (free, size uint64, err error) {
	return 0, 0, errors.New("disk usage: not supported on this platform")
}
