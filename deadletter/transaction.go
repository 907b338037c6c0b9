package deadletter

import "context"

// MaxScan bounds how many entries ForTransaction returns for one escrow.
const MaxScan = 10_000

// Lister is the part of a Ledger that TransactionFinder needs.
type Lister interface {
	List(ctx context.Context, f Filter, cursor string, limit int) (Page, error)
}

// TransactionFinder finds the dead letters of one escrow in a ledger (its
// List filtered by the payload's transactionId), for
// tasks.Inspector.History.
type TransactionFinder struct{ l Lister }

// ForTransactionOf returns the TransactionFinder of l.
func ForTransactionOf(l Lister) TransactionFinder { return TransactionFinder{l: l} }

// ForTransaction returns every entry of transactionID (all states), most
// recent failure first, up to MaxScan.
func (f TransactionFinder) ForTransaction(ctx context.Context, transactionID string) ([]Entry, error) {
	var out []Entry
	cursor := ""
	for len(out) < MaxScan {
		p, err := f.l.List(ctx, Filter{TransactionID: transactionID}, cursor, 500)
		if err != nil {
			return nil, err
		}
		out = append(out, p.Entries...)
		if p.Next == "" {
			break
		}
		cursor = p.Next
	}
	return out, nil
}
