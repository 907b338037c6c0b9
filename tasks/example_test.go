package tasks_test

import (
	"fmt"

	"github.com/escrowjobs/escrowjobs/payloads"
	"github.com/escrowjobs/escrowjobs/tasks"
	"github.com/hibiken/asynq"
)

func ExampleNewSendReleaseEmailTask() {
	task, err := tasks.NewSendReleaseEmailTask(payloads.SendReleaseEmail{
		TransactionID:  "esc-123",
		RecipientEmail: "seller@example.com",
		Amount:         12500,
		Currency:       "USD",
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(task.ID)
	fmt.Println(task.Queue)
	// Output:
	// send_release_email:escrow-esc-123-release-56cdbe771f15415c
	// default
}

func ExampleNewSendReleaseEmailTask_invalid() {
	_, err := tasks.NewSendReleaseEmailTask(payloads.SendReleaseEmail{
		TransactionID:  "esc-123",
		RecipientEmail: "not-an-address",
		Currency:       "usd",
	})
	fmt.Println(err)
	// Output:
	// invalid send_release_email payload: recipientEmail: must be a valid e-mail address; amount: must be greater than 0; currency: must be an upper-case ISO 4217 currency code
}

func ExampleDedupeKey() {
	task, _ := tasks.NewSendReleaseEmailTask(payloads.SendReleaseEmail{
		TransactionID: "esc-123", RecipientEmail: "seller@example.com", Amount: 12500, Currency: "USD",
	}, tasks.DedupeKey("escrow-esc-123-release"))
	fmt.Println(task.ID)
	// Output: send_release_email:escrow-esc-123-release
}

func ExampleFromJSON() {
	task, err := tasks.FromJSON("stripe_capture_payment", []byte(`{"transactionId":"esc-9","paymentIntentId":"pi_3MtwBw"}`))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(task.ID, task.Queue)

	_, err = tasks.FromJSON("stripe_capture_payment", []byte(`{"transactionId":"esc-9","paymentIntentId":"pi_1","amount":5}`))
	fmt.Println(err)
	// Output:
	// stripe_capture_payment:capture-pi_3MtwBw critical
	// invalid stripe_capture_payment payload: amount: is not a field of stripe_capture_payment
}

func ExampleWaitReplicas() {
	// REDIS_WAIT_REPLICAS=1: an enqueue succeeds only once one replica
	// holds the job; otherwise the error says it may not be durable.
	opts, err := tasks.ClientOptionsFromEnv(func(k string) string {
		if k == "REDIS_WAIT_REPLICAS" {
			return "1"
		}
		return ""
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	client := tasks.NewClient(asynq.RedisClientOpt{Addr: "127.0.0.1:6379"}, opts...)
	defer client.Close()
	fmt.Println(len(opts), "option")
	// Output: 1 option
}
