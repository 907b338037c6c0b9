package handlers

import (
	"context"

	"github.com/escrowjobs/escrowjobs/payloads"
	"github.com/hibiken/asynq"
)

// route is the handler of one job type.
type route struct {
	taskType string
	handler  asynq.Handler
}

// handle is the route of fn: the task type its payload declares, and fn
// behind the Typed adapter.
func handle[P payloads.Payload](fn func(context.Context, P) error) route {
	var zero P
	return route{taskType: zero.TaskType(), handler: Typed(fn)}
}
