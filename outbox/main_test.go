package outbox_test

import (
	"os"
	"testing"

	"github.com/escrowjobs/escrowjobs/internal/testenv"
)

func TestMain(m *testing.M) { os.Exit(testenv.RunMain(m)) }
