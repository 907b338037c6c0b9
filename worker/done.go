package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/escrowjobs/escrowjobs/internal/jsonl"

	"github.com/hibiken/asynq"
)

// A finished job whose outcome asynq may not record.
//
// asynq v0.26 records a job's outcome once, right after the handler
// returns, with a deadline of the job's lease; when Redis is down at that
// moment it queues a retry of the write whose context is already
// cancelled, so the write never lands. If the handler returns after the
// job's own deadline (its Timeout), asynq counts the attempt as failed
// whatever the handler returned. Either way the job stays "active" (or is
// scheduled for a retry) and runs again: asynq's recoverer, in any worker
// process, retries a job whose lease expired more than 30 s ago (once a
// minute), counting the lost outcome as a failed attempt.
//
// The worker therefore (settle) holds a finished job until Redis answers,
// but never past a moment shortly before the job's deadline. When it had
// to hold a successful job at all, or the job finished too close to its
// deadline, it records a completion marker, doneKey(id), in Redis — at
// once when Redis answers, else as soon as it is back (the marker writer
// keeps trying, well before the recoverer can run the job again, which
// needs Redis and a lease that expired 30 s earlier). A rerun of the job
// (retry count > 0: the recoverer counted one failure) that finds the
// marker returns success without running the handler: the effect happened
// exactly once.
//
// The marker lives doneTTL: long enough for the recoverer's rerun (1-2
// minutes after Redis is back, while a worker runs) and far shorter than
// the hour a completed job ID is kept, so a later job under the same ID
// can never be mistaken for this one.
const (
	doneTTL = 15 * time.Minute
	// settleMargin is how long before the job's deadline the hold ends,
	// so the handler's result reaches asynq before the deadline does.
	settleMargin = time.Second
	// markerRetry is how often pending markers are retried.
	markerRetry = 100 * time.Millisecond
)

func doneKey(id string) string { return "escrowjobs:done:" + id }

// doneMarkers are completion markers not yet written because Redis was down.
//
// With a file (Config.DoneMarkersPath) they also survive the process: each
// is appended and fsynced before the job's handler returns to asynq, read
// back by the next worker started on the file, and the file is emptied
// once every marker it holds is in Redis. Without one, a process that dies
// before Redis is back loses them, and asynq's rerun repeats the effect.
//
// A marker file belongs to one live process, which holds the flock of its
// lock file (<file>.lock) while it runs: the worker processes of one host
// that are given one path (the default is next to the dead-letter file,
// which they share) each take the first free of path, "<name>-2<ext>",
// "-3", … (markerFile). A starting worker also adopts the markers of the
// files whose process is gone, so a marker is replayed even when fewer
// processes come back than died. Without flock (not unix) the path is used
// as given.
type doneMarkers struct {
	mu      sync.Mutex
	pending map[string]string // job ID -> task type (for logs)
	wake    chan struct{}
	file    *jsonl.File // nil: memory only
	path    string      // the file's path, when there is one
	lock    *os.File    // holds the file's flock while the worker runs; nil without flock
	log     *slog.Logger
}

// maxMarkerFiles bounds how many worker processes of one host may share a
// marker path.
const maxMarkerFiles = 64

// markerFile is the n-th marker file of path: path itself, then
// "<name>-2<ext>", "<name>-3<ext>", … beside it.
func markerFile(path string, n int) string {
	if n == 1 {
		return path
	}
	ext := filepath.Ext(path)
	return fmt.Sprintf("%s-%d%s", strings.TrimSuffix(path, ext), n, ext)
}

// claimMarkerFile takes, without waiting, the flock of file's lock file;
// held reports that a live worker process has it (nothing is taken). The
// lock lasts until the returned file is closed.
func claimMarkerFile(file string) (lock *os.File, held bool, err error) {
	lock, err = os.OpenFile(file+".lock", os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, false, err
	}
	if _, held, err = jsonl.TryLock(lock); err != nil || held {
		lock.Close()
		return nil, held, err
	}
	return lock, false, nil
}

// doneLine is one marker in the file.
type doneLine struct {
	ID   string    `json:"id"`
	Type string    `json:"type"`
	At   time.Time `json:"at"`
}

func newDoneMarkers() *doneMarkers {
	return &doneMarkers{pending: map[string]string{}, wake: make(chan struct{}, 1), log: slog.New(slog.DiscardHandler)}
}

// openDoneMarkers is newDoneMarkers over the first marker file of path
// that no live worker process holds (a JSON-lines file, internal/jsonl, of
// this process alone while it runs): the markers it holds, and those of
// the files of path whose process is gone, that are younger than doneTTL
// are pending again (older ones no longer matter: a rerun would have found
// no marker in Redis either).
func openDoneMarkers(path string, log *slog.Logger) (*doneMarkers, error) {
	d := newDoneMarkers()
	d.log = log
	for n := 1; n <= maxMarkerFiles && d.path == ""; n++ {
		file := markerFile(path, n)
		lock, held, err := claimMarkerFile(file)
		switch {
		case errors.Is(err, jsonl.ErrNoLock):
			d.path = path // no flock on this system: the path as given
		case err != nil:
			return nil, fmt.Errorf("worker: completion markers: %w", err)
		case !held:
			d.path, d.lock = file, lock
		}
	}
	if d.path == "" {
		return nil, fmt.Errorf("worker: completion markers: the %d files of %s are held by running worker processes; give this one its own WORKER_DONE_MARKERS_PATH", maxMarkerFiles, path)
	}
	if d.path != path {
		log.Info("completion-marker file taken by another worker process; this one uses the next", "path", d.path)
	}
	f, err := jsonl.Open(d.path)
	if err != nil {
		d.close()
		return nil, fmt.Errorf("worker: completion markers: %w", err)
	}
	d.file = f
	if err := readMarkers(f, func(m doneLine) { d.pending[m.ID] = m.Type }); err != nil {
		d.close()
		return nil, fmt.Errorf("worker: completion markers: %w", err)
	}
	if d.lock != nil {
		for n := 1; n <= maxMarkerFiles; n++ {
			if file := markerFile(path, n); file != d.path {
				if err := d.adopt(file); err != nil {
					log.Warn("could not adopt the completion markers of a stopped worker process; they stay in its file for the next start",
						"path", file, "error", err.Error())
				}
			}
		}
	}
	if len(d.pending) > 0 {
		log.Warn("completion markers from before a restart are written to Redis when it answers, so asynq's rerun does not repeat their effects",
			"markers", len(d.pending), "path", d.path)
		d.wake <- struct{}{}
	}
	return d, nil
}

// readMarkers calls fn with each marker of f younger than doneTTL; blank
// lines and lines torn by a crash are passed over.
func readMarkers(f *jsonl.File, fn func(doneLine)) error {
	return f.ReadNew(func(ln []byte) {
		var m doneLine
		if json.Unmarshal(ln, &m) == nil && m.ID != "" && time.Since(m.At) < doneTTL {
			fn(m)
		}
	})
}

// adopt moves the markers of file, when its process is gone (its lock is
// free), into this process's file: each is appended there (fsynced) before
// file is emptied, so a crash in between leaves a marker twice, never
// nowhere. A file that does not exist or that a live process holds is
// left alone.
func (d *doneMarkers) adopt(file string) error {
	if _, err := os.Stat(file); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	lock, held, err := claimMarkerFile(file)
	if err != nil || held {
		return err
	}
	defer lock.Close()
	f, err := jsonl.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	var found []doneLine
	if err := readMarkers(f, func(m doneLine) { found = append(found, m) }); err != nil {
		return err
	}
	for _, m := range found {
		b, _ := json.Marshal(m)
		if err := d.file.Append(b); err != nil {
			return err
		}
		d.pending[m.ID] = m.Type
	}
	if len(found) > 0 {
		d.log.Warn("adopted the completion markers of a stopped worker process", "markers", len(found), "from", file, "path", d.path)
	}
	return f.Empty()
}

func (d *doneMarkers) add(id, typ string) {
	d.mu.Lock()
	d.pending[id] = typ
	if d.file != nil {
		b, _ := json.Marshal(doneLine{ID: id, Type: typ, At: time.Now().UTC()})
		if err := d.file.Append(b); err != nil { // fsynced; after a torn line, on a new line
			d.log.Error("could not keep a job's completion marker on disk; it is kept in memory only",
				"task_type", typ, "task_id", id, "error", err.Error())
		}
	}
	d.mu.Unlock()
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// close closes the file and lets another process have it; the markers
// still pending stay in it.
func (d *doneMarkers) close() {
	if d.file != nil {
		d.file.Close()
	}
	if d.lock != nil {
		d.lock.Close()
	}
}

func (d *doneMarkers) snapshot() map[string]string {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make(map[string]string, len(d.pending))
	for k, v := range d.pending {
		out[k] = v
	}
	return out
}

// remove drops a marker that is in Redis; the file is emptied once no
// marker is pending.
func (d *doneMarkers) remove(id string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.pending, id)
	if d.file != nil && len(d.pending) == 0 {
		if err := d.file.Empty(); err != nil {
			d.log.Warn("could not empty the completion-marker file; its markers are written again at the next start (harmless)", "error", err.Error())
		}
	}
}

// markDone records that job id finished, in Redis now or, when Redis does
// not answer, as soon as it is back.
func (w *Worker) markDone(id, typ string) {
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	if err := w.rc.Set(ctx, doneKey(id), "1", doneTTL).Err(); err == nil {
		return
	}
	w.cfg.Logger.Warn("Redis unreachable; the job's completion is kept in memory and written to Redis when it is back, so asynq's rerun does not repeat its effect",
		"task_type", typ, "task_id", id)
	w.done.add(id, typ)
}

// flushDone writes pending completion markers until ctx is done.
func (w *Worker) flushDone(ctx context.Context) {
	t := time.NewTicker(markerRetry)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			w.flushOnce(context.Background(), 2*time.Second)
			if left := w.done.snapshot(); len(left) > 0 {
				for id, typ := range left {
					if w.cfg.DoneMarkersPath != "" {
						w.cfg.Logger.Warn("stopping with a job's completion not yet in Redis (unreachable); it stays in the marker file for the next worker started on it",
							"task_type", typ, "task_id", id, "path", w.done.path)
						continue
					}
					w.cfg.Logger.Error("stopping with a job's completion unrecorded (Redis unreachable); asynq may run it again",
						"task_type", typ, "task_id", id)
				}
			}
			return
		case <-w.done.wake:
		case <-t.C:
		}
		w.flushOnce(ctx, 500*time.Millisecond)
	}
}

func (w *Worker) flushOnce(ctx context.Context, timeout time.Duration) {
	for id, typ := range w.done.snapshot() {
		cctx, cancel := context.WithTimeout(ctx, timeout)
		err := w.rc.Set(cctx, doneKey(id), "1", doneTTL).Err()
		cancel()
		if err != nil {
			return // still down; try again later
		}
		w.done.remove(id)
		w.cfg.Logger.Info("job completion recorded after the Redis outage", "task_type", typ, "task_id", id)
	}
}

// settle runs after the handler returned err: it holds the job until Redis
// answers so asynq's one write of the outcome lands, but only until
// settleMargin before the job's deadline; a successful job that had to be
// held, or finished too close to its deadline, gets a completion marker.
func (w *Worker) settle(ctx context.Context, t *asynq.Task, err error) {
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(maxHold)
	}
	holdUntil := deadline.Add(-settleMargin)
	if time.Since(time.Unix(0, w.redisOK.Load())) < redisFresh && time.Now().Before(holdUntil) {
		return // Redis just answered and asynq has time to write the outcome
	}
	answered := w.awaitRedis(t, holdUntil)
	if err != nil {
		return // a failed attempt runs again anyway; nothing to mark
	}
	id, _ := asynq.GetTaskID(ctx)
	if answered && time.Now().Before(holdUntil) && time.Since(time.Unix(0, w.redisOK.Load())) < redisFresh {
		// Redis is back in time for asynq's write; mark anyway, in case
		// Redis fails again before the write lands.
		w.markDone(id, t.Type())
		return
	}
	w.cfg.Logger.LogAttrs(ctx, slog.LevelWarn, "a finished job may not be recorded as done before its deadline; a completion marker keeps a rerun from repeating its effect",
		slog.String("task_type", t.Type()), slog.String("task_id", id))
	w.markDone(id, t.Type())
}
