// Package observe is what operators see of the job processors: Prometheus
// metrics per job type, a cached collector of queue figures, OpenTelemetry
// tracing configured from the standard OTEL_* variables, trace IDs in log
// lines, and the /healthz, /readyz and /metrics endpoints of the worker.
//
// # Metrics
//
// [NewJobMetrics] registers, on a registry the caller owns (never the global
// one), per task type:
//
//	escrowjobs_jobs_processed_total      attempts that succeeded
//	escrowjobs_jobs_failed_total         attempts that failed (= retried + dead-lettered)
//	escrowjobs_jobs_retried_total        failed attempts that will be retried
//	escrowjobs_jobs_dead_lettered_total  failed attempts after which the job was archived
//	escrowjobs_job_duration_seconds      handler duration (histogram)
//	escrowjobs_job_start_latency_seconds first attempt: due time at enqueue → start (histogram)
//
// Queue figures are asynq's collector (asynq_tasks_enqueued_total{queue,
// state}: size by state; asynq_queue_latency_seconds: age of the oldest
// pending job) behind [Cached], so that Redis sees at most one collection
// per 5 s however many scrapers there are.
//
// # Tracing
//
// [SetupTracing] reads only OTEL_* variables. When none asks for export it
// returns a no-op TracerProvider: no span is recorded, nothing is sent.
// Producers start a span at enqueue and put its W3C trace context in the
// task's headers (tasks.WithTracerProvider); [Observer.Wrap] starts one
// consumer span per attempt, child of and linked to the producer span, and
// the adapters' HTTP clients ([HTTPClient]) and the SMTP sender add child
// spans. [LogHandler] adds trace_id and span_id to log lines written
// within a span.
package observe
