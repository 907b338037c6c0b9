package monitor

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/escrowjobs/escrowjobs/console"
	"github.com/escrowjobs/escrowjobs/deadletter"
	"github.com/escrowjobs/escrowjobs/flows"
	"github.com/escrowjobs/escrowjobs/partner"
	"github.com/escrowjobs/escrowjobs/repair"
	"github.com/escrowjobs/escrowjobs/tasks"
)

// newConsole builds the operator console over the monitor's stores.
func (m *Monitor) newConsole() (*console.Console, error) {
	cfg := console.Config{
		DeadLetters: consoleDesk{Desk: m.desk},
		Flows:       flows.NewStore(m.inspector.Redis(), m.inspector),
		Escrows:     consoleEscrows{m: m},
		Jobs:        m.inspector,
		Partners:    consolePartners{m: m},
		ReadOnly:    m.cfg.ReadOnly,
		Ledger:      m.LedgerName(),
		MonitorPath: RootPath,
		Logger:      m.log,
	}
	c, err := console.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("monitor: %w", err)
	}
	return c, nil
}

// consoleRoutes is /console/ behind the Basic auth of /monitor/. The
// console refuses its own POSTs in read-only mode (403).
func (m *Monitor) consoleRoutes() http.Handler {
	return requireBasic(m.cfg.Username, m.cfg.Password, m.throttle, m.console)
}

// LedgerName says which dead-letter ledger the monitor reads: Config's
// LedgerName, else what the ledger says of itself (its String), else
// "none".
func (m *Monitor) LedgerName() string {
	switch {
	case m.cfg.LedgerName != "":
		return m.cfg.LedgerName
	case m.cfg.DeadLetters == nil:
		return "none (DEAD_LETTER_DATABASE_URL or DEAD_LETTER_PATH not set)"
	}
	if s, ok := m.cfg.DeadLetters.(fmt.Stringer); ok {
		return s.String()
	}
	return fmt.Sprintf("%T", m.cfg.DeadLetters)
}

// consoleDesk is the desk with the ledger's History of a job.
type consoleDesk struct{ *repair.Desk }

func (d consoleDesk) History(ctx context.Context, id string) ([]deadletter.Entry, error) {
	return deadletter.HistoryOf(ctx, d.Ledger(), id)
}

// consoleEscrows is one escrow's story (GET /api/v1/transactions/…/jobs).
type consoleEscrows struct{ m *Monitor }

func (e consoleEscrows) History(ctx context.Context, transactionID string) ([]tasks.HistoryJob, error) {
	var dl tasks.DeadLetterFinder
	if e.m.cfg.DeadLetters != nil {
		dl = deadletter.ForTransactionOf(e.m.cfg.DeadLetters)
	}
	return e.m.inspector.History(ctx, transactionID, dl)
}

// consolePartners is the partner state of GET /api/v1/partners and its
// enable and disable routes.
type consolePartners struct{ m *Monitor }

func (p consolePartners) Statuses(ctx context.Context) ([]partner.Status, error) {
	st, _, err := p.m.partnerState()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	return st.Statuses(ctx)
}

// WaitingBehind counts the later events that wait for the open dead
// letter e (console.OrderWaits).
func (p consolePartners) WaitingBehind(ctx context.Context, e deadletter.Entry) int {
	return p.m.waitingBehind(ctx, e)
}

func (p consolePartners) Enable(ctx context.Context, id, actor string) (int, error) {
	_, rd, err := p.m.partnerState()
	if err != nil {
		return 0, err
	}
	return rd.Enable(ctx, id, actor)
}

func (p consolePartners) Disable(ctx context.Context, id, actor, reason string) error {
	st, _, err := p.m.partnerState()
	if err != nil {
		return err
	}
	return st.Disable(ctx, id, truncate(reason, 200)+" (by "+actor+")")
}
