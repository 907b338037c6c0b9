package flows

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/escrowjobs/escrowjobs/tasks"
	"github.com/redis/go-redis/v9"
)

// View is a flow as Status and List show it, in the JSON shape of the
// HTTP API.
type View struct {
	ID        string     `json:"id"`
	Name      string     `json:"name"`
	Key       string     `json:"key"`
	State     string     `json:"state"`
	CreatedAt time.Time  `json:"createdAt"`
	UpdatedAt time.Time  `json:"updatedAt"`
	Steps     []StepView `json:"steps"`
}

// StepView is one step of a View.
type StepView struct {
	Name      string   `json:"name"`
	JobID     string   `json:"jobId"`
	Type      string   `json:"type"`
	After     []string `json:"after"`
	OnFailure bool     `json:"onFailure"`
	// State is one of the Step* states.
	State    string `json:"state"`
	Attempts int    `json:"attempts"`
	// LastError has e-mail addresses masked.
	LastError string `json:"lastError,omitempty"`
}

// FailedStep is the first failed step of v and its error ("" when none).
func (v View) FailedStep() (name, lastError string) {
	for _, s := range v.Steps {
		if s.State == StepFailed && !s.OnFailure {
			return s.Name, s.LastError
		}
	}
	return "", ""
}

// viewOf reads a flow's hash (HGETALL); ok is false when it does not hold
// a flow.
func viewOf(id string, h map[string]string) (View, bool) {
	var d def
	if h["def"] == "" || json.Unmarshal([]byte(h["def"]), &d) != nil {
		return View{}, false
	}
	v := View{ID: id, Name: d.Name, Key: d.Key, State: h["state"],
		CreatedAt: time.UnixMilli(d.CreatedAt).UTC(), UpdatedAt: millis(h["updatedAt"]), Steps: make([]StepView, len(d.Steps))}
	for i, s := range d.Steps {
		st := h["s:"+s.Name]
		if st == "" {
			st = StepWaiting
		}
		v.Steps[i] = StepView{Name: s.Name, JobID: s.JobID, Type: s.Type, After: s.After, OnFailure: s.OnFailure,
			State: st, LastError: h["e:"+s.Name]}
		if st == StepCompleted || st == StepFailed {
			v.Steps[i].Attempts = 1 // at least; Status asks asynq
		}
	}
	return v, true
}

func millis(s string) time.Time {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return time.Time{}
	}
	return time.UnixMilli(n).UTC()
}

// Status reads the flow id. For a pending step (and a failed one asynq
// still holds) it adds asynq's view of the step's job: its state (active,
// scheduled, retry), attempts and last error. ErrNotFound for no such
// flow (or one expired after the retention).
func (s *Store) Status(ctx context.Context, id string) (View, error) {
	h, err := s.rc.HGetAll(ctx, flowKey(id)).Result()
	if err != nil {
		return View{}, fmt.Errorf("flow %s: %w", id, err)
	}
	v, ok := viewOf(id, h)
	if !ok {
		return View{}, fmt.Errorf("flow %s: %w", id, ErrNotFound)
	}
	if s.in == nil {
		return v, nil
	}
	for i := range v.Steps {
		st := &v.Steps[i]
		if st.State != StepPending && st.State != StepFailed && st.State != StepCompleted {
			continue
		}
		j, err := s.in.Status(ctx, st.JobID)
		if errors.Is(err, tasks.ErrNotFound) {
			continue
		}
		if err != nil {
			return v, fmt.Errorf("flow %s: step %s: %w", id, st.Name, err)
		}
		st.Attempts = j.Attempts
		if j.LastError != "" && st.State != StepCompleted {
			st.LastError = j.LastError
		}
		if st.State == StepPending {
			switch j.State {
			case StepActive, StepScheduled, StepRetry, StepPending:
				st.State = j.State
			}
		}
	}
	return v, nil
}

// Filter selects flows for List; zero fields match every flow.
type Filter struct {
	State string // running, completed, failed or cancelled
	Name  string // the flow's name, e.g. "release"
}

// Page is one page of List: the flows, most recently created first, and
// the cursor of the next page ("" after the last).
type Page struct {
	Items []View `json:"items"`
	Next  string `json:"next,omitempty"`
}

// ErrBadCursor is returned by List for a cursor it did not hand out.
var ErrBadCursor = errors.New("invalid flow cursor")

// MaxListLimit is the most flows one List page holds.
const MaxListLimit = 500

// List pages through the flows that match f, most recently created first,
// from cursor ("" for the first page); limit is clamped to 1..MaxListLimit
// (0: 50). Each flow's own state decides whether it matches (the indexes
// are only hints and are corrected as List reads them). Steps show the
// flow's own step states (Status adds asynq's view).
func (s *Store) List(ctx context.Context, f Filter, cursor string, limit int) (Page, error) {
	if limit <= 0 {
		limit = 50
	}
	limit = min(limit, MaxListLimit)
	index := indexAll
	switch f.State {
	case StateRunning:
		index = indexRunning
	case StateFailed:
		index = indexFailed
	case "", StateCompleted, StateCancelled:
	default:
		return Page{}, fmt.Errorf("list flows: unknown state %q: want running, completed, failed or cancelled", f.State)
	}
	maxScore, after, err := decodeCursor(cursor)
	if err != nil {
		return Page{}, err
	}
	page := Page{Items: []View{}}
	batch := int64(max(limit*2, 20))
	for {
		zs, err := s.rc.ZRevRangeByScoreWithScores(ctx, index, &redis.ZRangeBy{Max: maxScore, Min: "-inf", Count: batch}).Result()
		if err != nil {
			return Page{}, fmt.Errorf("list flows: %w", err)
		}
		// Members at the cursor's score that were on earlier pages.
		start := 0
		if after != "" {
			cs, _ := strconv.ParseFloat(maxScore, 64)
			for start < len(zs) && zs[start].Score == cs && zs[start].Member.(string) >= after {
				start++
			}
		}
		cand := zs[start:]
		if len(cand) == 0 {
			if int64(len(zs)) == batch && start == len(zs) {
				batch *= 2 // a score shared by more flows than a batch: read more of it
				continue
			}
			return page, nil
		}
		pipe := s.rc.Pipeline()
		cmds := make([]*redis.MapStringStringCmd, len(cand))
		for i, z := range cand {
			cmds[i] = pipe.HGetAll(ctx, flowKey(z.Member.(string)))
		}
		if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
			return Page{}, fmt.Errorf("list flows: %w", err)
		}
		var stale []any
		for i, z := range cand {
			id := z.Member.(string)
			v, ok := viewOf(id, cmds[i].Val())
			if !ok {
				stale = append(stale, id)
			} else if (index == indexRunning && v.State != StateRunning) || (index == indexFailed && v.State != StateFailed) {
				stale = append(stale, id) // a transition whose index write was lost
			}
			maxScore, after = strconv.FormatFloat(z.Score, 'f', -1, 64), id
			if ok && (f.State == "" || v.State == f.State) && (f.Name == "" || v.Name == f.Name) {
				page.Items = append(page.Items, v)
				if len(page.Items) == limit {
					if len(stale) > 0 {
						s.rc.ZRem(ctx, index, stale...)
					}
					if i < len(cand)-1 || int64(len(zs)) == batch {
						page.Next = encodeCursor(maxScore, after)
					}
					return page, nil
				}
			}
		}
		if len(stale) > 0 {
			s.rc.ZRem(ctx, index, stale...)
		}
		if int64(len(zs)) < batch {
			return page, nil
		}
	}
}

func encodeCursor(score, member string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(score + "\n" + member))
}

func decodeCursor(c string) (score, member string, err error) {
	if c == "" {
		return "+inf", "", nil
	}
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return "", "", fmt.Errorf("list flows: %w", ErrBadCursor)
	}
	score, member, ok := strings.Cut(string(b), "\n")
	if _, perr := strconv.ParseFloat(score, 64); !ok || perr != nil || member == "" {
		return "", "", fmt.Errorf("list flows: %w", ErrBadCursor)
	}
	return score, member, nil
}
