package postgres_test

import (
	"context"
	"encoding/binary"
	"io"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/escrowjobs/escrowjobs/peertest"
	"github.com/escrowjobs/escrowjobs/postgres"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
)

// startingUpServer is a PostgreSQL front that answers the first refuse
// connections as a server that is starting up does (FATAL 57P03 "the
// database system is starting up") and passes the later ones through to
// upstream. It returns its address and the count of connections.
func startingUpServer(t *testing.T, upstream string, refuse int64) (string, *atomic.Int64) {
	t.Helper()
	var n atomic.Int64
	addr := peertest.ServeTCP(t, func(c net.Conn) {
		defer c.Close()
		if n.Add(1) <= refuse {
			var size [4]byte // the startup message: its length, then the rest
			if _, err := io.ReadFull(c, size[:]); err != nil {
				return
			}
			if _, err := io.CopyN(io.Discard, c, int64(binary.BigEndian.Uint32(size[:]))-4); err != nil {
				return
			}
			b, _ := (&pgproto3.ErrorResponse{Severity: "FATAL", SeverityUnlocalized: "FATAL", Code: "57P03", Message: "the database system is starting up"}).Encode(nil)
			_, _ = c.Write(b)
			return
		}
		u, err := net.Dial("tcp", upstream)
		if err != nil {
			return
		}
		defer u.Close()
		go func() { _, _ = io.Copy(u, c) }()
		_, _ = io.Copy(c, u)
	})
	return addr, &n
}

// TestOpenWaitsWhileTheServerIsStartingUp opens a database whose server
// answers its first connections "the database system is starting up"
// (SQLSTATE 57P03), as PostgreSQL does during a restart or a crash
// recovery: Open tries again and succeeds once the server accepts. A
// server that keeps refusing fails Open at its deadline, naming the
// reason. Before the fix a worker process started during a restart of its
// ledger's PostgreSQL exited at once (found by the chaos soak).
func TestOpenWaitsWhileTheServerIsStartingUp(t *testing.T) {
	real := peertest.Postgres(t)
	cfg, err := pgconn.ParseConfig(real)
	if err != nil {
		t.Fatal(err)
	}
	upstream := net.JoinHostPort(cfg.Host, itoa(cfg.Port))
	url := func(addr string) string { return strings.Replace(real, upstream, addr, 1) }

	t.Run("then accepts", func(t *testing.T) {
		addr, n := startingUpServer(t, upstream, 3)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		db, err := postgres.Open(ctx, url(addr))
		if err != nil {
			t.Fatalf("got %v, want Open to wait until the server accepts", err)
		}
		defer db.Close()
		if got := n.Load(); got < 4 {
			t.Errorf("got %d connections, want the 3 refused and one more", got)
		}
	})
	t.Run("keeps refusing", func(t *testing.T) {
		addr, _ := startingUpServer(t, upstream, 1<<40)
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		db, err := postgres.Open(ctx, url(addr))
		if err == nil {
			db.Close()
			t.Fatal("got nil error, want one at the deadline")
		}
		if !strings.Contains(err.Error(), "57P03") && !strings.Contains(err.Error(), "starting up") {
			t.Errorf("got %q, want it to name the server starting up", err)
		}
	})
}

func itoa(p uint16) string { return strconv.Itoa(int(p)) }
