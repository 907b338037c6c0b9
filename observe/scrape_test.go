package observe_test

import (
	"context"
	"net/http"
	"regexp"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/escrowjobs/escrowjobs/escrowtest"
	"github.com/escrowjobs/escrowjobs/monitor"
	"github.com/escrowjobs/escrowjobs/observe"
	"github.com/escrowjobs/escrowjobs/peertest"
	"github.com/escrowjobs/escrowjobs/tasks"
	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	goredis "github.com/redis/go-redis/v9"
)

var memoryCalls = regexp.MustCompile(`cmdstat_memory(?:\|usage)?:calls=(\d+)`)

// queueReads counts the MEMORY USAGE commands Redis ran so far (INFO
// commandstats). Only a queue-figures collection sends them (asynq's
// queue stats script measures each queue's memory); the worker's fetch
// loops never do, so the count moves by exactly one collection's worth per
// collection, whatever else the processes send.
func queueReads(t *testing.T, rc *goredis.Client) int {
	t.Helper()
	info, err := rc.Info(context.Background(), "commandstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	m := memoryCalls.FindStringSubmatch(info)
	if m == nil {
		return 0
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// TestConcurrentScrapesShareOneCollection: 100 concurrent scrapes of the
// monitor's /metrics cost Redis one queue-figures collection per 5 s, not
// one per scrape; the worker's /metrics (the real binary) holds its own
// figures only and never reads the queues (the cluster-wide series are the
// monitor's, so a fleet's sums count each queue once).
func TestConcurrentScrapesShareOneCollection(t *testing.T) {
	t.Parallel()
	redis := peertest.StartRedis(t)
	rc := escrowtest.StartReceiver(t, webhookKey)
	srv := startServer(t, redis.URL(), "http://127.0.0.1:1", rc.URL+"/hooks")
	opt, _ := asynq.ParseRedisURI(redis.URL())
	insp := tasks.NewInspector(opt)
	defer insp.Close()
	// Jobs due in an hour in each queue: the figures stay put during the test.
	enqueueEachLater(t, opt, "scrape")
	monURL := startMonitor(t, monitor.Config{RedisOpt: opt})
	counter := goredis.NewClient(&goredis.Options{Addr: redis.Addr()})
	defer counter.Close()

	// The cost of one collection, measured on a collector of our own.
	before := queueReads(t, counter)
	ch := make(chan prometheus.Metric, 1024)
	queueCollector(insp).Collect(ch)
	one := queueReads(t, counter) - before
	if one <= 0 {
		t.Fatalf("one collection sent %d MEMORY USAGE commands, want some (the test measures nothing otherwise)", one)
	}

	for _, target := range []struct {
		name, url string
		collects  bool
	}{
		{"worker", srv.URL + "/metrics", false},
		{"monitor", monURL + "/metrics", true},
	} {
		for round := range 2 {
			before := queueReads(t, counter)
			start := time.Now()
			var wg sync.WaitGroup
			codes := make(chan int, 100)
			for range 100 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					res, err := http.Get(target.url)
					if err != nil {
						codes <- 0
						return
					}
					res.Body.Close()
					codes <- res.StatusCode
				}()
			}
			wg.Wait()
			elapsed := time.Since(start)
			close(codes)
			for c := range codes {
				if c != http.StatusOK {
					t.Fatalf("%s round %d: a scrape answered %d, want 200", target.name, round, c)
				}
			}
			spent := queueReads(t, counter) - before
			allowed := 1 + int(elapsed/observe.QueueCollectInterval)
			if spent%one != 0 || spent/one > allowed {
				t.Errorf("%s round %d: 100 scrapes in %s cost %d MEMORY USAGE commands = %.1f collections, want at most %d (one per %s)",
					target.name, round, elapsed.Round(time.Millisecond), spent, float64(spent)/float64(one), allowed, observe.QueueCollectInterval)
			}
			if !target.collects && spent != 0 {
				t.Errorf("%s round %d: scrapes sent %d MEMORY USAGE commands, want 0 (the worker exports no queue figures)", target.name, round, spent)
			}
			if target.collects && round == 0 && spent == 0 {
				t.Errorf("%s: the first 100 scrapes collected nothing; want one collection (the cache was cold)", target.name)
			}
			t.Logf("%s round %d: 100 concurrent scrapes in %s: %d collection(s)", target.name, round, elapsed.Round(time.Millisecond), spent/one)
		}
	}
}
