//go:build !unix

package audit

import (
	"errors"
	"os"
)

// errNoLock is returned where flock is not available.
var errNoLock = errors.New("AUDIT_LOG_PATH: file locking is not supported on this system; use AUDIT_DATABASE_URL")

func lockFile(*os.File) error   { return errNoLock }
func unlockFile(*os.File) error { return nil }
