package asynqmsg_test

import (
	"context"
	"strings"
	"testing"

	_ "github.com/hibiken/asynq" // registers asynq.TaskMessage

	"github.com/escrowjobs/escrowjobs/internal/asynqmsg"
	"github.com/escrowjobs/escrowjobs/peertest"
	"github.com/redis/go-redis/v9"
	"google.golang.org/protobuf/encoding/protowire"
)

// The payload field of the asynq in go.mod: an upgrade that moves it
// fails here.
func TestPayloadFieldIsAsynqsFieldTwo(t *testing.T) {
	got, err := asynqmsg.PayloadField()
	if err != nil || got != 2 {
		t.Errorf("PayloadField: got %d, %v; want 2, nil", got, err)
	}
}

// The Lua field(tag, v) writes what protowire writes, across the lengths
// where a varint grows a byte.
func TestLuaFieldEncodesAsProtowire(t *testing.T) {
	rc := peertest.RedisClient(t, peertest.Redis(t))
	script := redis.NewScript(asynqmsg.Lua + `return field(ARGV[1], ARGV[2])`)
	tag := string(protowire.AppendTag(nil, 2, protowire.BytesType))
	for _, n := range []int{0, 1, 127, 128, 300, 16383, 16384, 70000} {
		v := strings.Repeat("x", n)
		got, err := script.Run(context.Background(), rc, nil, tag, v).Text()
		want := string(protowire.AppendBytes(protowire.AppendTag(nil, 2, protowire.BytesType), []byte(v)))
		if err != nil || got != want {
			t.Errorf("field of %d bytes: got %d bytes (%q…), %v; want %d bytes (%q…)", n, len(got), head(got), err, len(want), head(want))
		}
	}
}

func head(s string) string { return s[:min(len(s), 6)] }
