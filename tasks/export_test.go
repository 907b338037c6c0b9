package tasks

import "github.com/redis/go-redis/v9"

// SetAfterMove injects a failure between the two steps of a requeue.
func SetAfterMove(d *DeadLetters, f func() error) { d.afterMove = f }

// AddRedisHook adds a go-redis hook to the Inspector's client (fault
// injection).
func AddRedisHook(in *Inspector, h redis.Hook) { in.rc.AddHook(h) }
