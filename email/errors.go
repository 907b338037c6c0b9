package email

import (
	"fmt"

	"github.com/escrowjobs/escrowjobs/payloads"
	"github.com/hibiken/asynq"
)

// maskedError shows err's text with every e-mail address masked and keeps
// err as its cause for errors.Is and errors.As. Peers echo the recipient
// (go-mail's SendError lists it, SMTP servers quote it), and the error text
// ends up in logs and in the archived task.
type maskedError struct{ err error }

func (e maskedError) Error() string { return payloads.MaskEmailsString(e.err.Error()) }

func (e maskedError) Unwrap() error { return e.err }

// masked wraps err so its text never shows an e-mail address; nil stays nil.
func masked(err error) error {
	if err == nil {
		return nil
	}
	return maskedError{err}
}

// permanent marks err as a failure that retrying does not fix.
func permanent(err error) error {
	return fmt.Errorf("%w: %w", err, asynq.SkipRetry)
}
