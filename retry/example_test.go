package retry_test

import (
	"errors"
	"fmt"
	"time"

	"github.com/escrowjobs/escrowjobs/retry"
)

// An adapter reports a peer's Retry-After; the worker's schedule honours it
// when it is longer than the next pause.
func ExampleAfter() {
	now := time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)
	err := errors.New("partner answered 429")
	if d, ok := retry.ParseAfter("30", now); ok {
		err = retry.After(d, err)
	}
	for n := 0; n <= 2; n++ {
		fmt.Println(retry.Delay(n, err), retry.Delay(n, errors.New("timeout")))
	}
	// Output:
	// 30s 2s
	// 30s 4s
	// 30s 8s
}
