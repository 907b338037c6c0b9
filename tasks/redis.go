package tasks

import (
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/hibiken/asynq"
)

// Redis connection timeouts: short, so an outage surfaces as an error fast.
const (
	redisDialTimeout  = time.Second
	redisReadTimeout  = 3 * time.Second
	redisWriteTimeout = 3 * time.Second
)

// RedisFromEnv reads REDIS_CLUSTER_ADDRS (comma-separated host:port of a
// Redis Cluster, with REDIS_USERNAME and REDIS_PASSWORD) or else REDIS_URL
// (redis://, rediss://, redis-socket://, redis-sentinel://; a user name in
// the URL is a Redis ACL user). For redis-sentinel:// the URL's
// credentials are the sentinels', and REDIS_USERNAME and REDIS_PASSWORD
// those of the master and replicas.
// Errors name the variable and never show a password.
func RedisFromEnv(getenv func(string) string) (asynq.RedisConnOpt, error) {
	if addrs := strings.TrimSpace(getenv("REDIS_CLUSTER_ADDRS")); addrs != "" {
		var list []string
		for _, a := range strings.Split(addrs, ",") {
			a = strings.TrimSpace(a)
			if a == "" {
				continue
			}
			if !strings.Contains(a, ":") {
				return nil, fmt.Errorf("REDIS_CLUSTER_ADDRS: %q is not host:port", a)
			}
			list = append(list, a)
		}
		return asynq.RedisClusterClientOpt{
			Addrs: list, Username: getenv("REDIS_USERNAME"), Password: getenv("REDIS_PASSWORD"),
			DialTimeout: redisDialTimeout, ReadTimeout: redisReadTimeout, WriteTimeout: redisWriteTimeout,
		}, nil
	}
	raw := strings.TrimSpace(getenv("REDIS_URL"))
	if raw == "" {
		return nil, fmt.Errorf("REDIS_URL is not set (e.g. redis://127.0.0.1:6379/0), nor REDIS_CLUSTER_ADDRS")
	}
	u, err := url.Parse(raw)
	if err != nil {
		// url.Parse's error repeats the whole URL, password included.
		return nil, fmt.Errorf("REDIS_URL is not a valid URL (want redis://[:password@]host:port/db, rediss://…, redis-sentinel://host:port?master=NAME)")
	}
	opt, err := asynq.ParseRedisURI(raw)
	if err != nil {
		return nil, fmt.Errorf("REDIS_URL %s: %v", RedactURL(raw), redactErr(err, raw))
	}
	// asynq.ParseRedisURI drops the user name of redis://user:pass@…, so a
	// Redis ACL user would authenticate as "default" with its password.
	user := u.User.Username()
	switch o := opt.(type) {
	case asynq.RedisClientOpt:
		o.Username = user
		o.DialTimeout, o.ReadTimeout, o.WriteTimeout = redisDialTimeout, redisReadTimeout, redisWriteTimeout
		return o, nil
	case asynq.RedisFailoverClientOpt:
		// The URL's credentials are the sentinels' (asynq's reading); the
		// master's and replicas' come from REDIS_USERNAME/REDIS_PASSWORD,
		// which asynq's URL has no place for.
		o.SentinelUsername = user
		o.Username, o.Password = getenv("REDIS_USERNAME"), getenv("REDIS_PASSWORD")
		o.DialTimeout, o.ReadTimeout, o.WriteTimeout = redisDialTimeout, redisReadTimeout, redisWriteTimeout
		return o, nil
	}
	return opt, nil
}

// RedactURL hides the password of a URL ("redis://:xxxxx@host:6379").
func RedactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparseable URL)"
	}
	return u.Redacted()
}

func redactErr(err error, raw string) string {
	msg := err.Error()
	if u, perr := url.Parse(raw); perr == nil && u.User != nil {
		if p, ok := u.User.Password(); ok && p != "" {
			msg = strings.ReplaceAll(msg, p, "xxxxx")
		}
	}
	return msg
}
