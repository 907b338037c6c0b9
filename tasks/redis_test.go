package tasks_test

import (
	"context"
	"net/url"
	"strings"
	"testing"

	"github.com/escrowjobs/escrowjobs/peertest"
	"github.com/escrowjobs/escrowjobs/tasks"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// A Redis ACL user in REDIS_URL connects as that user (asynq.ParseRedisURI
// alone would drop the name and authenticate as "default"); a wrong
// password fails without showing it.
func TestRedisFromEnvConnectsAsTheACLUser(t *testing.T) {
	ctx := context.Background()
	admin := peertest.RedisClient(t, peertest.Redis(t))
	if err := admin.Do(ctx, "ACL", "SETUSER", "escrow-jobs", "on", ">s3cret-pw", "~*", "&*", "+@all").Err(); err != nil {
		t.Fatal(err)
	}
	addr := admin.Options().Addr
	for _, tc := range []struct {
		name, url string
		wantUser  string // "" = the connection must fail
	}{
		{"ACL user", "redis://escrow-jobs:s3cret-pw@" + addr + "/0", "escrow-jobs"},
		{"ACL user, wrong password", "redis://escrow-jobs:wrong-pw@" + addr + "/0", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opt, err := tasks.RedisFromEnv(func(k string) string { return map[string]string{"REDIS_URL": tc.url}[k] })
			if err != nil {
				t.Fatalf("RedisFromEnv: %v", err)
			}
			rc := opt.MakeRedisClient().(redis.UniversalClient)
			defer rc.Close()
			who, err := rc.Do(ctx, "ACL", "WHOAMI").Text()
			if tc.wantUser == "" {
				if err == nil {
					t.Fatalf("connected as %q, want an authentication error", who)
				}
				pw, _ := mustURL(t, tc.url).User.Password()
				if strings.Contains(err.Error(), pw) {
					t.Errorf("error shows the password: %v", err)
				}
				return
			}
			if err != nil || who != tc.wantUser {
				t.Fatalf("ACL WHOAMI: got %q, %v; want %q", who, err, tc.wantUser)
			}
			// And asynq, under the job layer, works as that user.
			c := asynq.NewClient(opt)
			defer c.Close()
			if _, err := c.EnqueueContext(ctx, asynq.NewTask("acl_probe", nil)); err != nil {
				t.Errorf("enqueue as %s: %v", tc.wantUser, err)
			}
		})
	}
}

func TestRedisFromEnvClusterTakesUserAndPassword(t *testing.T) {
	env := map[string]string{"REDIS_CLUSTER_ADDRS": "10.0.0.1:7000, 10.0.0.2:7000", "REDIS_USERNAME": "escrow-jobs", "REDIS_PASSWORD": "pw"}
	opt, err := tasks.RedisFromEnv(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	c, ok := opt.(asynq.RedisClusterClientOpt)
	if !ok || c.Username != "escrow-jobs" || c.Password != "pw" || strings.Join(c.Addrs, " ") != "10.0.0.1:7000 10.0.0.2:7000" {
		t.Errorf("got %#v, want the two addresses, user escrow-jobs, password pw", opt)
	}
}

func mustURL(t *testing.T, raw string) *url.URL {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// Sentinel with a password on the master (requirepass): the URL's
// credentials are the sentinels' (here none), REDIS_PASSWORD the master's.
// Without it the master refuses every command, and the error does not show
// the password.
func TestRedisFromEnvSentinelMasterPassword(t *testing.T) {
	t.Parallel()
	const pw = "m4ster-pw"
	s := peertest.StartSentinelAuth(t, pw)
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		env  map[string]string
		ok   bool
	}{
		{"with REDIS_PASSWORD", map[string]string{"REDIS_URL": s.URL(), "REDIS_PASSWORD": pw}, true},
		{"without", map[string]string{"REDIS_URL": s.URL()}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opt, err := tasks.RedisFromEnv(func(k string) string { return tc.env[k] })
			if err != nil {
				t.Fatal(err)
			}
			c := asynq.NewClient(opt)
			defer c.Close()
			_, err = c.EnqueueContext(ctx, asynq.NewTask("sentinel_probe", nil))
			switch {
			case tc.ok && err != nil:
				t.Errorf("enqueue through the sentinel: %v", err)
			case !tc.ok && (err == nil || !strings.Contains(err.Error(), "NOAUTH")):
				t.Errorf("enqueue without the master's password: got %v, want NOAUTH", err)
			case err != nil && strings.Contains(err.Error(), pw):
				t.Errorf("error shows the password: %v", err)
			}
		})
	}
}
