//go:build !linux

package ingest

import (
	"errors"
	"time"
)

// notifier is unavailable here: the file source polls.
type notifier struct{}

func startNotify(string, func() time.Duration, func([]byte)) (*notifier, error) {
	return nil, errors.New("no directory notification on this platform")
}

func (n *notifier) sync()        {}
func (n *notifier) close()       {}
func (n *notifier) isDead() bool { return true }
