package repair

// SetAfterMove injects a failure between the two steps of a requeue.
func SetAfterMove(d *Desk, f func() error) { d.afterMove = f }

// SetBeforeMove runs f between a requeue's read of the ledger and its move.
func SetBeforeMove(d *Desk, f func()) { d.beforeMove = f }
