//go:build unix

package jsonl

import (
	"os"
	"syscall"
)

// Lock takes an exclusive flock on f, waiting for other holders, and
// returns its release. A file that is replaced (renamed over) needs a lock
// file beside it that stays.
func Lock(f *os.File) (unlock func(), err error) { return flock(f, syscall.LOCK_EX) }

// TryLock takes an exclusive flock on f if no other open file holds one,
// without waiting: held reports that another holder has it (nothing was
// taken). The lock lasts until unlock or until f is closed.
func TryLock(f *os.File) (unlock func(), held bool, err error) {
	unlock, err = flock(f, syscall.LOCK_EX|syscall.LOCK_NB)
	if err == syscall.EWOULDBLOCK {
		return nil, true, nil
	}
	return unlock, false, err
}

// flock applies the flock operation how to f, again when a signal
// interrupts it, and returns the release.
func flock(f *os.File, how int) (unlock func(), err error) {
	for {
		err := syscall.Flock(int(f.Fd()), how)
		if err == nil {
			return func() { _ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN) }, nil
		}
		if err != syscall.EINTR {
			return nil, err
		}
	}
}
