//go:build !unix

package wal

import (
	"errors"
	"os"
)

func tryLock(f *os.File) error {
	return errors.New("data-dir locking needs flock, which this platform lacks")
}
