package audit_test

import (
	"bytes"
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/escrowjobs/escrowjobs/audit"
	"github.com/escrowjobs/escrowjobs/payloads"
)

func ExampleOpenFile() {
	dir, _ := os.MkdirTemp("", "audit-example-")
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "audit.jsonl")

	sink, err := audit.OpenFile(path)
	if err != nil {
		log.Fatal(err)
	}
	defer sink.Close()

	e := payloads.AuditLogCreated{EventID: "evt-1", Actor: "user-7", Action: "escrow.released", OccurredAt: "2024-05-01T12:00:00Z"}
	for range 2 { // a retried job writes the same event again: stored once
		if err := sink.WriteAudit(context.Background(), e); err != nil {
			log.Fatal(err)
		}
	}
	b, _ := os.ReadFile(path)
	fmt.Println(bytes.Count(b, []byte("\n")), "line")
	// Output: 1 line
}
