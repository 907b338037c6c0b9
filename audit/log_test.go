package audit_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"

	"github.com/escrowjobs/escrowjobs/devmode"
)

func TestLog(t *testing.T) {
	var buf bytes.Buffer
	sink := devmode.NewAudit(slog.New(slog.NewTextHandler(&buf, nil)))
	e := event("ev-1")
	e.Metadata = json.RawMessage(`{"by":"jane.doe@example.com"}`)
	if err := sink.WriteAudit(context.Background(), e); err != nil {
		t.Fatalf("WriteAudit: %v", err)
	}
	got := buf.String()
	for _, want := range []string{"eventId=ev-1", "actor=user-1", "action=escrow.released", "transactionId=esc-123", "j***@example.com"} {
		if !strings.Contains(got, want) {
			t.Errorf("got log %q, want it to contain %q", got, want)
		}
	}
	if strings.Contains(got, "jane.doe@") {
		t.Errorf("got log %q, want the e-mail address masked", got)
	}
}
