// Package console is the operator console of the monitor: server-rendered
// HTML pages (html/template, templates and CSS embedded, no JavaScript)
// over the dead-letter ledger, the flows, one escrow's story and the
// partners, with the repairs an operator makes.
//
// # Pages
//
//	/console/dead-letters               the ledger, newest first, filtered and paged by cursor
//	/console/dead-letters/{id}          one job's dead letter: every run and its fate
//	/console/flows                      running and failed flows, by state and name
//	/console/flows/{id}                 a flow's steps in dependency order
//	/console/escrows/{transactionId}    an escrow's flows, jobs and dead letters in time order
//	/console/partners                   each partner's delivery state
//
// # Actions
//
// Requeue, discard (with a reason), bulk requeue by filter (with a dry run
// that lists what would run) and partner enable and disable are POST forms
// under /console/actions/. Each carries a CSRF token bound to the
// Basic-auth user (an HMAC under a key of the Console), is recorded with
// that user as the actor, and answers with a redirect and a flash message
// or a result page; a dead letter someone else resolved first is a 409
// page. A missing or wrong token is 403 and changes nothing. With
// Config.ReadOnly no form is rendered and every POST is 403.
//
// The console does not check credentials: the monitor mounts it behind
// the same Basic auth as asynqmon, and gives it the real stores through
// the small interfaces below (DeadLetters, Flows, Escrows, Jobs, Partners).
// Addresses are masked as in the API (deadletter.Entry.Masked); job IDs
// are shown whole.
package console
