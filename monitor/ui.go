package monitor

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"

	"github.com/escrowjobs/escrowjobs/payloads"
	"github.com/escrowjobs/escrowjobs/tasks"
	"github.com/hibiken/asynqmon"
)

// RootPath is where asynqmon is served.
const RootPath = "/monitor"

// maskingFormatter shows payloads and results as asynqmon does by default,
// with every e-mail address masked.
type maskingFormatter struct{}

// FormatPayload decodes a JSON payload by its type, so address fields are
// masked whatever they hold; anything else is masked as text.
func (maskingFormatter) FormatPayload(taskType string, payload []byte) string {
	if json.Valid(payload) {
		payload = tasks.MaskPayload(taskType, payload)
	} else {
		payload = payloads.MaskEmails(payload)
	}
	return asynqmon.DefaultPayloadFormatter.FormatPayload(taskType, payload)
}

func (maskingFormatter) FormatResult(taskType string, result []byte) string {
	if json.Valid(result) {
		result = payloads.MaskedJSON(result)
	} else {
		result = payloads.MaskEmails(result)
	}
	return asynqmon.DefaultResultFormatter.FormatResult(taskType, result)
}

func newUI(m *Monitor) *asynqmon.HTTPHandler {
	return asynqmon.New(asynqmon.Options{
		RootPath:         RootPath,
		RedisConnOpt:     m.cfg.RedisOpt,
		PayloadFormatter: maskingFormatter{},
		ResultFormatter:  maskingFormatter{},
		ReadOnly:         m.cfg.ReadOnly,
	})
}

// uiRoutes is /monitor/ behind Basic auth: read-only guard, e-mail masking
// of asynqmon's API answers, and asynqmon itself.
func (m *Monitor) uiRoutes() http.Handler {
	var h http.Handler = maskAPIAnswers(m.requeueFromUI(m.ui))
	if m.cfg.ReadOnly {
		h = readOnly(h)
	}
	return requireBasic(m.cfg.Username, m.cfg.Password, m.throttle, h)
}

// readOnly refuses every request that could change something. asynqmon's
// own ReadOnly option does the same for its API routes; this also covers
// anything it might add.
func readOnly(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			writeError(w, http.StatusMethodNotAllowed, codeReadOnly, "the monitor is read-only (MONITOR_READ_ONLY=true): "+r.Method+" is not allowed")
			return
		}
		h.ServeHTTP(w, r)
	})
}

// maskAPIAnswers masks e-mail addresses in every answer of asynqmon's JSON
// API (RootPath/api/…). The formatters cover payloads and results; this also
// covers what asynqmon shows unformatted: a task's last error, server and
// scheduler listings.
func maskAPIAnswers(h http.Handler) http.Handler {
	prefix := RootPath + "/api/"
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.URL.Path, prefix) {
			h.ServeHTTP(w, r)
			return
		}
		bw := &bufferedWriter{header: w.Header(), status: http.StatusOK}
		h.ServeHTTP(bw, r)
		w.Header().Del("Content-Length")
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(bw.status)
		body := bw.body.Bytes()
		if json.Valid(body) {
			body = payloads.MaskedJSON(body)
		} else {
			body = payloads.MaskEmails(body)
		}
		_, _ = w.Write(body)
	})
}

// bufferedWriter holds an answer until it has been masked.
type bufferedWriter struct {
	header http.Header
	status int
	wrote  bool
	body   bytes.Buffer
}

func (b *bufferedWriter) Header() http.Header { return b.header }

func (b *bufferedWriter) WriteHeader(code int) {
	if !b.wrote {
		b.status, b.wrote = code, true
	}
}

func (b *bufferedWriter) Write(p []byte) (int, error) {
	b.wrote = true
	return b.body.Write(p)
}
