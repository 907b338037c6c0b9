package console

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/escrowjobs/escrowjobs/partner"
)

// partnersData is the partners page.
type partnersData struct {
	Partners []partner.Status
}

func (c *Console) partners(w http.ResponseWriter, r *http.Request) {
	if c.cfg.Partners == nil {
		c.storeError(w, r, "Partners", errUnavailable)
		return
	}
	list, err := c.cfg.Partners.Statuses(r.Context())
	if err != nil {
		c.storeError(w, r, "Partners", err)
		return
	}
	c.render(w, r, http.StatusOK, "partners", "Partners", "partners", partnersData{Partners: list})
}

// partnerOf reads and checks the form's partner: one the state knows.
func (c *Console) partnerOf(w http.ResponseWriter, r *http.Request) (string, bool) {
	if c.cfg.Partners == nil {
		c.storeError(w, r, "Partners", errUnavailable)
		return "", false
	}
	id := strings.TrimSpace(r.PostForm.Get("id"))
	if !partner.ValidPartnerID(id) {
		c.fail(w, r, http.StatusBadRequest, "Bad request", "Partner ID: want 1-64 letters, digits, '-', '_' or '.'. Nothing was changed.")
		return "", false
	}
	list, err := c.cfg.Partners.Statuses(r.Context())
	if err != nil {
		c.storeError(w, r, "Partners", err)
		return "", false
	}
	for _, s := range list {
		if s.ID == id {
			return id, true
		}
	}
	c.fail(w, r, http.StatusNotFound, "Not found", "Partner "+id+" is not in the registry. Nothing was changed.")
	return "", false
}

func (c *Console) partnerEnable(w http.ResponseWriter, r *http.Request) {
	id, ok := c.partnerOf(w, r)
	if !ok {
		return
	}
	reason, bad := reasonOf(r, false)
	if bad != "" {
		c.fail(w, r, http.StatusBadRequest, "Bad request", "Enable "+id+": "+bad+" Nothing was changed.")
		return
	}
	who := actor(r)
	n, err := c.cfg.Partners.Enable(r.Context(), id, who)
	if err != nil {
		c.storeError(w, r, "Enable partner "+id, err)
		return
	}
	c.log.Info("console: partner enabled", "partner", id, "redelivered", n, "actor", who, "reason", reason, "remote", r.RemoteAddr)
	c.redirect(w, r, Root+"/partners", "ok", fmt.Sprintf("Partner %s enabled by %s; %d dead letters redelivered.", id, who, n))
}

func (c *Console) partnerDisable(w http.ResponseWriter, r *http.Request) {
	id, ok := c.partnerOf(w, r)
	if !ok {
		return
	}
	reason, bad := reasonOf(r, true)
	if bad != "" {
		c.fail(w, r, http.StatusBadRequest, "Bad request", "Disable "+id+": "+bad+" Nothing was changed.")
		return
	}
	who := actor(r)
	if err := c.cfg.Partners.Disable(r.Context(), id, who, reason); err != nil {
		c.storeError(w, r, "Disable partner "+id, err)
		return
	}
	c.log.Info("console: partner disabled", "partner", id, "actor", who, "reason", reason, "remote", r.RemoteAddr)
	c.redirect(w, r, Root+"/partners", "ok", fmt.Sprintf("Partner %s disabled by %s: %s", id, who, reason))
}
