package main

import (
	"fmt"
	"testing"

	"github.com/escrowjobs/escrowjobs/payloads"
)

// Every job of a mix has its own ID (a duplicate would be refused as a
// dedupe hit and skew the run), and each perEscrow consecutive jobs share
// one escrow.
func TestMixGroupsJobsPerEscrowWithUniqueIDs(t *testing.T) {
	for _, perEscrow := range []int{1, 2, 5, 9} {
		t.Run(fmt.Sprint(perEscrow), func(t *testing.T) {
			jobs := mix(90, "abcdef", perEscrow)
			ids := map[string]bool{}
			escrows := map[string]int{}
			for _, j := range jobs {
				if ids[j.id] {
					t.Fatalf("job ID %s twice", j.id)
				}
				ids[j.id] = true
				e, ok := j.p.(payloads.Escrowed)
				if !ok || e.EscrowID() == "" {
					t.Fatalf("%s: no escrow", j.typ)
				}
				escrows[e.EscrowID()]++
			}
			if got, want := len(escrows), 90/perEscrow; got != want {
				t.Errorf("escrows: got %d, want %d", got, want)
			}
			for tx, n := range escrows {
				if n != perEscrow {
					t.Errorf("escrow %s: got %d jobs, want %d", tx, n, perEscrow)
				}
			}
		})
	}
}
