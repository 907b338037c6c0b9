package process_test

import (
	"flag"
	"os"
	"testing"

	"github.com/escrowjobs/escrowjobs/peertest"
)

// TestMain stops the private PostgreSQL cluster that the outbox relay's
// test starts (peertest.Postgres). Unless -parallel is given, it lets four
// parallel tests run at once, not GOMAXPROCS (two on the CI machines):
// three of them are mostly a wait of one to two minutes for asynq's lease
// recovery of a killed worker, with little CPU, and would otherwise wait
// one after another.
func TestMain(m *testing.M) {
	flag.Parse()
	given := false
	flag.Visit(func(f *flag.Flag) { given = given || f.Name == "test.parallel" })
	if !given {
		_ = flag.Set("test.parallel", "4")
	}
	os.Exit(peertest.RunMain(m))
}
