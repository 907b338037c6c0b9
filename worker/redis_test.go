package worker

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/escrowjobs/escrowjobs/peertest"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// The worker's client speaks RESP2 for every kind of Redis option asynq
// has, with the option's own settings.
func TestWorkerClientSpeaksRESP2(t *testing.T) {
	url := peertest.Redis(t)
	opt := redisOpt(t, url)
	rc, err := newRedisClient(opt)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	info, err := rc.Do(context.Background(), "CLIENT", "INFO").Text()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(strings.Fields(info), "resp=2") {
		t.Errorf("CLIENT INFO: got %q, want resp=2", info)
	}
	for _, c := range []struct {
		name string
		opt  asynq.RedisConnOpt
	}{
		{"client", asynq.RedisClientOpt{Addr: "127.0.0.1:6390", Username: "u", Password: "p", DB: 3, PoolSize: 7, ReadTimeout: 2 * time.Second}},
		{"failover", asynq.RedisFailoverClientOpt{MasterName: "m", SentinelAddrs: []string{"127.0.0.1:26379"}, DB: 2, PoolSize: 5}},
		{"cluster", asynq.RedisClusterClientOpt{Addrs: []string{"127.0.0.1:7000"}, MaxRedirects: 4, Password: "p"}},
	} {
		rc, err := newRedisClient(c.opt)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		theirs := c.opt.MakeRedisClient()
		switch ours := rc.(type) {
		case *redis.Client:
			got, want := *ours.Options(), *theirs.(*redis.Client).Options()
			if got.Protocol != 2 {
				t.Errorf("%s: protocol: got %d, want 2", c.name, got.Protocol)
			}
			if got.Addr != want.Addr || got.Username != want.Username || got.Password != want.Password || got.DB != want.DB ||
				got.PoolSize != want.PoolSize || got.ReadTimeout != want.ReadTimeout || got.WriteTimeout != want.WriteTimeout {
				t.Errorf("%s: got options %+v, want asynq's %+v but RESP2", c.name, got, want)
			}
		case *redis.ClusterClient:
			got, want := *ours.Options(), *theirs.(*redis.ClusterClient).Options()
			if got.Protocol != 2 || got.MaxRedirects != want.MaxRedirects || got.Password != want.Password || len(got.Addrs) != 1 || got.Addrs[0] != want.Addrs[0] {
				t.Errorf("%s: got options %+v, want asynq's %+v but RESP2", c.name, got, want)
			}
		default:
			t.Errorf("%s: got a %T", c.name, rc)
		}
		rc.Close()
		theirs.(redis.UniversalClient).Close()
	}
}
