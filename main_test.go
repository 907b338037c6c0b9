package escrowjobs_test

import (
	"os"
	"testing"

	"github.com/escrowjobs/escrowjobs/internal/testenv"
)

// TestMain stops the private PostgreSQL cluster (if a test started one)
// when the suite ends.
func TestMain(m *testing.M) { os.Exit(testenv.RunMain(m)) }
