package postgres_test

import (
	"os"
	"testing"

	"github.com/escrowjobs/escrowjobs/peertest"
)

// TestMain stops the private PostgreSQL cluster after the tests.
func TestMain(m *testing.M) { os.Exit(peertest.RunMain(m)) }
