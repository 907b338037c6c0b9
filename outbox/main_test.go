package outbox_test

import (
	"os"
	"testing"

	"github.com/escrowjobs/escrowjobs/peertest"
)

func TestMain(m *testing.M) { os.Exit(peertest.RunMain(m)) }
