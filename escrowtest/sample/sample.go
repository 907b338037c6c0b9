// Package sample makes typical payloads of the nine job types, for the
// benchmarks and the load command: realistic sizes, unique IDs. The
// payloads come from the registry (tasks.Type.Sample), so a new type is
// in the mix as soon as it is registered.
package sample

import (
	"github.com/escrowjobs/escrowjobs/payloads"
	"github.com/escrowjobs/escrowjobs/tasks"
)

// Payload is the i-th payload of the mix of all types (i modulo the number
// of types picks the type, in the registry's order). seq makes its IDs
// unique: letters, digits and '-'.
func Payload(i int, seq string) payloads.Payload {
	types := tasks.Types()
	return types[i%len(types)].Sample(seq)
}

// Build builds the job of p with its type's defaults, as a producer's typed
// constructor does.
func Build(p payloads.Payload) (*tasks.Task, error) { return tasks.New(p) }
