package monitor_test

import (
	"log"
	"log/slog"
	"net/http"
	"os"
	"time"

	"github.com/escrowjobs/escrowjobs/monitor"
	"github.com/escrowjobs/escrowjobs/tasks"
)

// New builds the monitor from a typed config; serve its Handler on any
// http.Server, and Close it after the server.
func ExampleNew() {
	redisOpt, err := tasks.RedisFromEnv(os.Getenv)
	if err != nil {
		log.Fatal(err)
	}
	m, err := monitor.New(monitor.Config{
		RedisOpt: redisOpt,
		APIToken: os.Getenv("JOB_PROCESSOR_SECRET_TOKEN"),
		Username: os.Getenv("MONITOR_USERNAME"),
		Password: os.Getenv("MONITOR_PASSWORD"),
		ReadOnly: true,
		Logger:   slog.Default(),
	})
	if err != nil {
		log.Fatal(err) // names each missing variable
	}
	defer m.Close()
	srv := &http.Server{Addr: ":8080", Handler: m.Handler(), ReadHeaderTimeout: 5 * time.Second}
	log.Fatal(srv.ListenAndServe())
}
