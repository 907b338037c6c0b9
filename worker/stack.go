package worker

// growStack grows the calling goroutine's stack, while it is still
// shallow, to what a job's run needs, in one step.
//
// asynq runs every job on a goroutine of its own, which starts with a
// small stack; decoding the payload, the handler and asynq's completion
// script through go-redis then outgrow it, and each growth copies the
// whole stack, deep by then, frame by frame (runtime.newstack and
// copystack were a tenth of the worker's CPU). One growth at the top of
// the job's goroutine copies a few frames only.
//
// 12 KiB of room takes a new goroutine's stack to 16 KiB, the largest size
// the runtime keeps in its per-P caches, and enough for a job's run: in the
// profile nothing under the handler grows the stack again.
//
//go:noinline
func growStack() {
	var pad [12 << 10]byte
	keep(pad[:])
}

// keep makes the compiler keep the array it is given.
//
//go:noinline
func keep(b []byte) { b[0] = 1 }
