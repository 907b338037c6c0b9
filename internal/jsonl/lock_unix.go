//go:build unix

package jsonl

import (
	"os"
	"syscall"
)

// Lock takes an exclusive flock on f, waiting for other holders, and
// returns its release. A file that is replaced (renamed over) needs a lock
// file beside it that stays.
func Lock(f *os.File) (unlock func(), err error) {
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX)
		if err == nil {
			return func() { _ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN) }, nil
		}
		if err != syscall.EINTR {
			return nil, err
		}
	}
}
