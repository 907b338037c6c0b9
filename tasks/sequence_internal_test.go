package tasks

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/escrowjobs/escrowjobs/payloads"
	"github.com/escrowjobs/escrowjobs/peertest"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// takeApartHook stands for an asynq whose enqueue script the wake
// publisher does not recognise: it takes the sequence of seq on its own
// and writes it into asynq's message before the script goes to Redis.
type takeApartHook struct {
	rc  *redis.Client
	seq *seqEntry
	err error
}

func (h *takeApartHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *takeApartHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

func (h *takeApartHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if _, _, ok := enqueuedQueue(cmd.Args()); ok {
			h.err = h.seq.takeApart(ctx, h.rc, cmd.Args())
		}
		return next(ctx, cmd)
	}
}

// When asynq's enqueue script is not recognised (another asynq), a partner
// event still gets its sequence and registration: taken in a round trip
// of its own and written into asynq's message, every other field kept.
func TestSequenceTakenApartIsWrittenIntoAsynqsMessage(t *testing.T) {
	ctx := context.Background()
	u := peertest.Redis(t)
	opt, err := asynq.ParseRedisURI(u)
	if err != nil {
		t.Fatal(err)
	}
	rc := opt.MakeRedisClient().(*redis.Client)
	t.Cleanup(func() { rc.Close() })
	for _, tc := range []struct {
		name    string
		payload payloads.WebhookEscrowStatusChanged
		want    int64
	}{
		{"next", payloads.WebhookEscrowStatusChanged{EventID: "evt-apart-1", PartnerID: "acme", TransactionID: "esc-apart",
			PreviousStatus: payloads.StatusPending, Status: payloads.StatusFunded, OccurredAt: "2026-12-03T12:00:00Z"}, 1},
		{"given", payloads.WebhookEscrowStatusChanged{EventID: "evt-apart-2", PartnerID: "acme", TransactionID: "esc-apart",
			PreviousStatus: payloads.StatusFunded, Status: payloads.StatusReleased, OccurredAt: "2026-12-03T12:01:00Z", Sequence: 7}, 7},
	} {
		t.Run(tc.name, func(t *testing.T) {
			task, err := New(tc.payload)
			if err != nil {
				t.Fatal(err)
			}
			c := &Client{rc: rc}
			_, seq, err := c.sequenced(ctx, task)
			if err != nil || seq == nil {
				t.Fatalf("sequenced: got %v, %v; want an entry for the script", seq, err)
			}
			h := &takeApartHook{rc: rc, seq: seq}
			hc := opt.MakeRedisClient().(*redis.Client)
			hc.AddHook(h)
			defer hc.Close()
			raw := asynq.NewClientFromRedisClient(hc)
			if _, err := raw.Enqueue(asynq.NewTask(task.Type(), task.Payload(), task.Options()...)); err != nil || h.err != nil {
				t.Fatalf("enqueue: got %v, %v", err, h.err)
			}
			info, err := asynq.NewInspectorFromRedisClient(rc).GetTaskInfo(task.Queue, task.ID)
			if err != nil {
				t.Fatal(err)
			}
			var got payloads.WebhookEscrowStatusChanged
			if err := json.Unmarshal(info.Payload, &got); err != nil {
				t.Fatalf("payload %s: %v", info.Payload, err)
			}
			want := tc.payload
			want.Sequence = tc.want
			if got != want || info.Type != task.Type() || info.ID != task.ID {
				t.Errorf("stored job: got %s %s %+v, want %s %s %+v", info.Type, info.ID, got, task.Type(), task.ID, want)
			}
			if score, err := rc.ZScore(ctx, "escrowjobs:seq:{esc-apart}:acme", task.ID).Result(); err != nil || int64(score) != tc.want {
				t.Errorf("registration: got %v (%v), want %d", score, err, tc.want)
			}
		})
	}
}

// splitPayload refuses what it cannot add a sequence to, naming why.
func TestSplitPayloadRefusesAPayloadThatIsNotAnObject(t *testing.T) {
	for _, tc := range []struct {
		name string
		msg  any
	}{
		{"not bytes", 42},
		{"not a message", []byte{0xff, 0xff}},
	} {
		if _, _, _, _, err := splitPayload(tc.msg); err == nil {
			t.Errorf("%s: got no error, want one", tc.name)
		}
	}
}
