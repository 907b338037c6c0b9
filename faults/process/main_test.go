package process_test

import (
	"os"
	"testing"

	"github.com/escrowjobs/escrowjobs/peertest"
)

// TestMain stops the private PostgreSQL cluster that the outbox relay's
// test starts (peertest.Postgres).
func TestMain(m *testing.M) { os.Exit(peertest.RunMain(m)) }
