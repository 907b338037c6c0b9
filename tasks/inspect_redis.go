package tasks

import "github.com/redis/go-redis/v9"

// Redis returns the Inspector's Redis client, for state kept next to the
// jobs (per-partner delivery state) and for package repair, which moves
// dead letters back in asynq's keys; it is closed with the Inspector.
func (in *Inspector) Redis() redis.UniversalClient { return in.rc }
