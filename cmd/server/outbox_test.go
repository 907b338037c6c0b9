package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/escrowjobs/escrowjobs/peertest"
)

// An unreachable OUTBOX_DATABASE_URL stops the server at start with an
// error that names the variable and hides the password.
func TestUnreachableOutboxDatabaseIsAStartupErrorNamingTheVariable(t *testing.T) {
	var out, errOut peertest.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	port := peertest.FreePort(t) // nothing listens there
	env := envOf(map[string]string{"OUTBOX_DATABASE_URL": "postgres://app:s3cretOutboxPw@" + peertest.Addr(port) + "/escrow?sslmode=disable"})
	err := run(ctx, []string{"-dev", "-dev-redis-addr", "127.0.0.1:0", "-monitor-addr", "127.0.0.1:0", "-no-scheduler"}, env, &out, &errOut)
	if err == nil || !strings.Contains(err.Error(), "OUTBOX_DATABASE_URL") {
		t.Fatalf("got %v, want a start-up error naming OUTBOX_DATABASE_URL", err)
	}
	if all := err.Error() + out.String() + errOut.String(); strings.Contains(all, "s3cretOutboxPw") {
		t.Errorf("the password leaked: %q", err)
	}
}
