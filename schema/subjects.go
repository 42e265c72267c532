package schema

// Stream names and subject roots (docs/design.md §1).
const (
	StreamSubmit = "BRIG_SUBMIT"
	StreamWork   = "BRIG_WORK"
	StreamEvents = "BRIG_EVENTS"

	SubmitPrefix = "brig.submit."
	WorkPrefix   = "brig.work."
	EventsPrefix = "brig.events."
	CancelPrefix = "brig.cancel."
	// ReplayPrefix is where clients ask the dispatchers for a job's stored
	// events (docs/design.md §6): clients hold no JetStream API (§10).
	ReplayPrefix = "brig.replay."
	// ReplyPrefix starts every reply_to that gets copies of a job's events:
	// the inboxes clients subscribe to (docs/design.md §10).
	ReplyPrefix = "_INBOX."
)

// SubmitSubject is where a client publishes a job for function fn.
func SubmitSubject(fn string) string { return SubmitPrefix + fn }

// WorkSubject is where a dispatcher routes jobs for pool.
func WorkSubject(pool string) string { return WorkPrefix + pool }

// EventSubject is where a job's event of the given type is stored.
func EventSubject(jobID, eventType string) string { return EventsPrefix + jobID + "." + eventType }

// EventsFilter matches every event of one job.
func EventsFilter(jobID string) string { return EventsPrefix + jobID + ".>" }

// CancelSubject cancels a queued or running job.
func CancelSubject(jobID string) string { return CancelPrefix + jobID }

// ReplaySubject asks a dispatcher for a job's events, or whether it has any.
func ReplaySubject(jobID string) string { return ReplayPrefix + jobID }

// TerminalMsgID is the Nats-Msg-Id of a job's terminal event: the stream
// keeps one per job, whoever publishes it and however often.
func TerminalMsgID(jobID string) string { return jobID + ".terminal" }
