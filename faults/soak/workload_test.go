package soak_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"

	"github.com/escrowjobs/escrowjobs/payloads"
)

// path is what the workload does with one escrow after creating it.
type path string

const (
	pathRelease        path = "release"             // release (capture)
	pathRefund         path = "refund"              // refund (the uncaptured PaymentIntent is canceled)
	pathResolveRelease path = "dispute+release"     // dispute, resolve release_to_seller (capture)
	pathResolveRefund  path = "dispute+refund"      // dispute, resolve refund_to_buyer (cancel)
	pathResolveSplit   path = "dispute+split"       // dispute, resolve split (capture of the seller's share)
	pathDisputeOnly    path = "dispute"             // dispute, never resolved
	pathExpiredRelease path = "expired+release"     // release of an expired authorization: the capture fails for good
	pathExpiredResolve path = "expired+dispute+rel" // dispute, resolve release_to_seller: the capture fails for good
	pathExpiredRefund  path = "expired+refund"      // refund of an expired authorization: already canceled, done
)

// paths with their weights.
var paths = []struct {
	p path
	w int
}{
	{pathRelease, 24}, {pathRefund, 14}, {pathResolveRelease, 11}, {pathResolveRefund, 11}, {pathResolveSplit, 10},
	{pathDisputeOnly, 5}, {pathExpiredRelease, 10}, {pathExpiredResolve, 7}, {pathExpiredRefund, 8},
}

// escrowCase is one escrow of the workload.
type escrowCase struct {
	id, pi, buyer, seller, partner, currency string
	amount, sellerAmount                     int64
	path                                     path
	expired                                  bool
	disputeID                                string

	mu        sync.Mutex
	anomalies []string // answers the API should not have given
}

func (e *escrowCase) anomaly(format string, args ...any) {
	e.mu.Lock()
	e.anomalies = append(e.anomalies, fmt.Sprintf(format, args...))
	e.mu.Unlock()
}

// newCase draws escrow i from r.
func newCase(r *rand.Rand, i int) *escrowCase {
	total := 0
	for _, p := range paths {
		total += p.w
	}
	n, p := r.IntN(total), paths[0].p
	for _, c := range paths {
		if n < c.w {
			p = c.p
			break
		}
		n -= c.w
	}
	e := &escrowCase{
		id: fmt.Sprintf("soak-%d", i), pi: fmt.Sprintf("pi_soak%d", i),
		buyer: fmt.Sprintf("soak-buyer-%d@customers.example.com", i), seller: fmt.Sprintf("soak-seller-%d@customers.example.com", i),
		partner: []string{"", partnerHealthy, partnerFlaky, partnerDown}[r.IntN(4)], currency: []string{"USD", "EUR", "GBP"}[r.IntN(3)],
		amount: 1000 + r.Int64N(90000), path: p, disputeID: fmt.Sprintf("dsp-soak-%d", i),
	}
	e.expired = p == pathExpiredRelease || p == pathExpiredResolve || p == pathExpiredRefund
	if p == pathResolveSplit {
		e.sellerAmount = 1 + r.Int64N(e.amount-1)
	}
	return e
}

// transitions are the API calls of the case after its creation.
func (e *escrowCase) transitions() []call {
	switch e.path {
	case pathRelease, pathExpiredRelease:
		return []call{{"release", map[string]any{}}}
	case pathRefund, pathExpiredRefund:
		return []call{{"refund", map[string]any{"reason": payloads.RefundRequestedByCustomer}}}
	case pathDisputeOnly:
		return []call{e.dispute()}
	case pathResolveRelease, pathExpiredResolve:
		return []call{e.dispute(), {"resolve", map[string]any{"resolution": payloads.ResolutionReleaseToSeller}}}
	case pathResolveRefund:
		return []call{e.dispute(), {"resolve", map[string]any{"resolution": payloads.ResolutionRefundToBuyer}}}
	case pathResolveSplit:
		return []call{e.dispute(), {"resolve", map[string]any{"resolution": payloads.ResolutionSplit, "sellerAmount": e.sellerAmount}}}
	}
	return nil
}

func (e *escrowCase) dispute() call {
	return call{"dispute", map[string]any{"disputeId": e.disputeID, "reason": "item not received"}}
}

type call struct {
	route string
	body  map[string]any
}

// run creates the escrow and makes its transitions, a short random pause
// apart. A call that fails without an answer (the connection, a 5xx while
// PostgreSQL restarts) may or may not have committed: it is sent again
// until it is answered; a 409 after such a failure is the earlier attempt
// having committed. Which transitions committed is read from the
// database at the end, not from these answers.
func (s *system) runCase(e *escrowCase, pause func() time.Duration, stop <-chan struct{}) {
	s.stripe.AddIntent(e.pi, "requires_capture", e.amount)
	if e.expired {
		s.stripe.ExpireAuthorization(e.pi)
	}
	body := map[string]any{"id": e.id, "buyerEmail": e.buyer, "sellerEmail": e.seller, "amount": e.amount, "currency": e.currency, "paymentIntentId": e.pi}
	if e.partner != "" {
		body["partnerId"] = e.partner
	}
	if !s.post(e, "/escrows", body) {
		return
	}
	for _, c := range e.transitions() {
		select {
		case <-time.After(pause()):
		case <-stop:
		}
		if !s.post(e, "/escrows/"+e.id+"/"+c.route, c.body) {
			return
		}
	}
}

// post sends one call until it is answered (at most two minutes); it
// reports whether the workload may go on with the escrow.
func (s *system) post(e *escrowCase, route string, body map[string]any) bool {
	b, _ := json.Marshal(body)
	deadline := time.Now().Add(2 * time.Minute)
	failed := false
	for {
		resp, err := s.http.Post(s.escrowURL+route, "application/json", bytes.NewReader(b))
		if err == nil {
			answer, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			resp.Body.Close()
			switch {
			case resp.StatusCode < 300:
				return true
			case resp.StatusCode == http.StatusConflict && failed:
				return true // the failed attempt committed
			case resp.StatusCode < 500:
				e.anomaly("POST %s: %d %s", route, resp.StatusCode, answer)
				return false
			}
		}
		failed = true
		if time.Now().After(deadline) {
			e.anomaly("POST %s: no answer within 2 minutes (last error %v)", route, err)
			return false
		}
		time.Sleep(300 * time.Millisecond)
	}
}
