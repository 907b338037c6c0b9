package repair

// SetAfterMove injects a failure between the two steps of a requeue.
func SetAfterMove(d *Desk, f func() error) { d.afterMove = f }
