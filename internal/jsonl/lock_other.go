//go:build !unix

package jsonl

import "os"

// Lock fails with ErrNoLock: flock is not available here.
func Lock(*os.File) (unlock func(), err error) { return nil, ErrNoLock }

// TryLock fails with ErrNoLock: flock is not available here.
func TryLock(*os.File) (unlock func(), held bool, err error) { return nil, false, ErrNoLock }
