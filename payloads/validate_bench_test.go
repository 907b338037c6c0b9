package payloads_test

import (
	"strconv"
	"testing"

	"github.com/escrowjobs/escrowjobs/escrowtest/sample"
	"github.com/escrowjobs/escrowjobs/payloads"
)

// BenchmarkValidate validates one sample of each of the nine types per
// iteration: the rules every Enqueue and every handler's decode run.
func BenchmarkValidate(b *testing.B) {
	var ps []payloads.Payload
	for i := range 9 {
		ps = append(ps, sample.Payload(i, strconv.Itoa(i)))
	}
	b.ReportAllocs()
	for b.Loop() {
		for _, p := range ps {
			if err := payloads.Validate(p); err != nil {
				b.Fatal(err)
			}
		}
	}
}
