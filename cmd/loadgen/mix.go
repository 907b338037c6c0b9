package main

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"

	"github.com/escrowjobs/escrowjobs/escrowtest/sample"
	"github.com/escrowjobs/escrowjobs/payloads"
	"github.com/escrowjobs/escrowjobs/tasks"
	"github.com/hibiken/asynq"
)

// job is one job of the mix, ready for either client: the typed payload for
// escrowjobs, and the same payload's JSON bytes and a job ID of the same
// length for raw asynq.
type job struct {
	p   payloads.Payload
	typ string
	raw []byte
	id  string
}

// nonce makes the IDs of one phase unique (dedupe keys include it), always
// six characters so every phase's payloads and IDs have the same size.
func nonce() string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, 6)
	for i := range b {
		b[i] = alphabet[rand.IntN(len(alphabet))]
	}
	return string(b)
}

// mix returns n jobs, the nine types round-robin, with typical payloads;
// each perEscrow consecutive jobs share one escrow (transaction ID).
func mix(n int, nonce string, perEscrow int) []job {
	out := make([]job, n)
	for i := range out {
		p := sample.Payload(i, nonce+"-"+fmt.Sprintf("%08d", i/perEscrow))
		b, err := json.Marshal(p)
		if err != nil {
			panic(err) // the payload structs always encode
		}
		out[i] = job{p: p, typ: p.TaskType(), raw: b, id: tasks.JobID(p, "")}
	}
	return out
}

// rawTask is what a raw asynq producer writes: the encoded payload and a
// TaskID (queue "default", asynq's defaults otherwise).
func rawTask(j *job) *asynq.Task {
	return asynq.NewTask(j.typ, j.raw, asynq.TaskID(j.id))
}
