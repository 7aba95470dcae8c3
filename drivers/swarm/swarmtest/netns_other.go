//go:build !linux

package swarmtest

import (
	"errors"
	"time"
)

func dialIn(string, string, time.Duration) error {
	return errors.New("swarmtest: network namespaces need Linux")
}
