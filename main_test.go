package escrowjobs_test

import (
	"os"
	"testing"

	"github.com/escrowjobs/escrowjobs/peertest"
)

// TestMain stops the private PostgreSQL cluster (if a test started one)
// when the suite ends.
func TestMain(m *testing.M) { os.Exit(peertest.RunMain(m)) }
