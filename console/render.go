package console

import (
	"bytes"
	"encoding/json"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"time"

	"github.com/escrowjobs/escrowjobs/payloads"
)

// parsePages parses each page (one template each) with the layout.
func parsePages(monitorPath string) (map[string]*template.Template, error) {
	funcs := template.FuncMap{
		"idpath": url.PathEscape,
		"asynqmon": func(queue, id string) string {
			return monitorPath + "/queues/" + url.PathEscape(queue) + "/tasks/" + url.PathEscape(id)
		},
		"when":    when,
		"pretty":  pretty,
		"mask":    payloads.MaskEmailsString,
		"monitor": func() string { return monitorPath + "/" },
	}
	out := map[string]*template.Template{}
	for _, name := range []string{"dead_letters", "dead_letter", "bulk", "flows", "flow", "escrow", "partners", "error"} {
		t, err := template.New(name).Funcs(funcs).ParseFS(assets, "templates/layout.html", "templates/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("console: template %s: %w", name, err)
		}
		out[name] = t
	}
	return out, nil
}

// when shows a time (time.Time or *time.Time) in UTC to the second.
func when(v any) string {
	var t time.Time
	switch x := v.(type) {
	case time.Time:
		t = x
	case *time.Time:
		if x == nil {
			return "—"
		}
		t = *x
	}
	if t.IsZero() {
		return "—"
	}
	return t.UTC().Format("2006-01-02 15:04:05 UTC")
}

// pretty indents a JSON payload (masked by the caller).
func pretty(b []byte) string {
	var out bytes.Buffer
	if json.Indent(&out, b, "", "  ") != nil {
		return string(b)
	}
	return out.String()
}

// view is what every page gets: the layout's fields and the page's Data.
type view struct {
	Title     string
	Nav       string
	ReadOnly  bool
	CSRF      string
	Actor     string
	Ledger    string
	FlashKind string
	Flash     string
	Search    string
	Data      any
}

// render writes page with data, status 200 unless status says otherwise.
func (c *Console) render(w http.ResponseWriter, r *http.Request, status int, page, title, nav string, data any) {
	v := view{Title: title, Nav: nav, ReadOnly: c.cfg.ReadOnly, Actor: actor(r), Ledger: c.cfg.Ledger, Data: data}
	if !c.cfg.ReadOnly {
		v.CSRF = c.token(actor(r))
	}
	if r.Method == http.MethodGet {
		v.FlashKind, v.Flash = takeFlash(w, r)
	}
	var buf bytes.Buffer
	if err := c.pages[page].ExecuteTemplate(&buf, "layout", v); err != nil {
		c.log.Error("console: render "+page, "err", err.Error())
		http.Error(w, "console: the page could not be rendered", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// problem is the error page's data.
type problem struct {
	Status  int
	Heading string
	Message string
}

// fail answers an error page.
func (c *Console) fail(w http.ResponseWriter, r *http.Request, status int, heading, msg string) {
	c.render(w, r, status, "error", fmt.Sprintf("%d %s", status, heading), "", problem{Status: status, Heading: heading, Message: msg})
}

// maskErr is an error's text with addresses masked.
func maskErr(err error) string { return payloads.MaskEmailsString(err.Error()) }
