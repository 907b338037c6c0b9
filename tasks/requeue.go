package tasks

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/escrowjobs/escrowjobs/deadletter"
	"github.com/redis/go-redis/v9"
	"google.golang.org/protobuf/encoding/protowire"
)

// Field numbers of asynq's TaskMessage (internal/proto/asynq.proto, v0.26).
const (
	fieldRetried      = 6
	fieldErrorMsg     = 7
	fieldDeadline     = 9
	fieldLastFailedAt = 11
	fieldHeaders      = 15
)

// errNotInArchive is returned by moveArchived when asynq does not hold the
// job as archived; state says what it holds ("" for nothing).
type errNotInArchive struct{ state string }

func (e *errNotInArchive) Error() string {
	if e.state == "" {
		return "not in asynq"
	}
	return "in asynq as " + e.state
}

// moveArchived puts the archived job id of queue back to pending with its
// full retry budget and run header run, in one Redis transaction: the task
// hash is rewritten (retried count, last error and failure time cleared,
// the run header set), removed from the archive and pushed onto the
// pending list, or nothing happens. It is asynq's RunTask plus the budget
// reset, which RunTask lacks. A concurrent change of the task (WATCH)
// retries; at no moment is the job in neither place.
func (in *Inspector) moveArchived(ctx context.Context, queue, id, run string) error {
	taskKey := "asynq:{" + queue + "}:t:" + id
	for range 5 {
		err := in.rc.Watch(ctx, func(tx *redis.Tx) error {
			vals, err := tx.HMGet(ctx, taskKey, "state", "msg").Result()
			if err != nil {
				return err
			}
			state, _ := vals[0].(string)
			msg, _ := vals[1].(string)
			if state != "archived" {
				return &errNotInArchive{state: state}
			}
			fresh, err := resetMessage([]byte(msg), run, time.Now())
			if err != nil {
				return fmt.Errorf("requeue %s: decode asynq's task: %w", id, err)
			}
			_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
				p.HSet(ctx, taskKey, "msg", fresh, "state", "pending", "pending_since", strconv.FormatInt(time.Now().UnixNano(), 10))
				p.ZRem(ctx, "asynq:{"+queue+"}:archived", id)
				p.LPush(ctx, "asynq:{"+queue+"}:pending", id)
				return nil
			})
			return err
		}, taskKey)
		if !errors.Is(err, redis.TxFailedErr) {
			return err
		}
	}
	return fmt.Errorf("requeue %s: the task kept changing under the requeue; try again", id)
}

// resetMessage rewrites an encoded TaskMessage for a fresh run: no retries
// spent, no last error or failure time, no deadline already past, and the
// run header set.
func resetMessage(msg []byte, run string, now time.Time) ([]byte, error) {
	var out []byte
	for b := msg; len(b) > 0; {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return nil, protowire.ParseError(n)
		}
		m := protowire.ConsumeFieldValue(num, typ, b[n:])
		if m < 0 {
			return nil, protowire.ParseError(m)
		}
		field := b[:n+m]
		b = b[n+m:]
		switch num {
		case fieldRetried, fieldErrorMsg, fieldLastFailedAt:
			continue
		case fieldDeadline:
			if v, k := protowire.ConsumeVarint(field[n:]); k > 0 && int64(v) > 0 && int64(v) <= now.Unix() {
				continue
			}
		case fieldHeaders:
			if key, _ := headerEntry(field[n:]); key == deadletter.RunHeader {
				continue
			}
		}
		out = append(out, field...)
	}
	entry := protowire.AppendTag(nil, 1, protowire.BytesType)
	entry = protowire.AppendString(entry, deadletter.RunHeader)
	entry = protowire.AppendTag(entry, 2, protowire.BytesType)
	entry = protowire.AppendString(entry, run)
	out = protowire.AppendTag(out, fieldHeaders, protowire.BytesType)
	out = protowire.AppendBytes(out, entry)
	return out, nil
}

// headerEntry reads the key and value of one map<string,string> entry.
func headerEntry(b []byte) (key, value string) {
	entry, n := protowire.ConsumeBytes(b)
	if n < 0 {
		return "", ""
	}
	for len(entry) > 0 {
		num, typ, k := protowire.ConsumeTag(entry)
		if k < 0 {
			return key, value
		}
		entry = entry[k:]
		if typ != protowire.BytesType {
			m := protowire.ConsumeFieldValue(num, typ, entry)
			if m < 0 {
				return key, value
			}
			entry = entry[m:]
			continue
		}
		s, m := protowire.ConsumeString(entry)
		if m < 0 {
			return key, value
		}
		entry = entry[m:]
		switch num {
		case 1:
			key = s
		case 2:
			value = s
		}
	}
	return key, value
}
