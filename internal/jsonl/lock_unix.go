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

// TryLock takes an exclusive flock on f if no other open file holds one,
// without waiting: held reports that another holder has it (nothing was
// taken). The lock lasts until unlock or until f is closed.
func TryLock(f *os.File) (unlock func(), held bool, err error) {
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		switch err {
		case nil:
			return func() { _ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN) }, false, nil
		case syscall.EWOULDBLOCK:
			return nil, true, nil
		case syscall.EINTR:
			continue
		}
		return nil, false, err
	}
}
