package schema

import "strings"

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
	// StatusPrefix starts the subject a tenant's client asks for its status
	// on: brig.status.<tenant>.
	StatusPrefix = "brig.status."
	// FunctionsPrefix starts the subject a tenant's client lists, reads,
	// deploys and deletes its functions on: brig.functions.<tenant>
	// (docs/design.md §3.1).
	FunctionsPrefix = "brig.functions."
	// ReplyPrefix starts every reply_to that gets copies of a job's events:
	// the inboxes clients subscribe to (docs/design.md §10).
	ReplyPrefix = "_INBOX."
	// ActivePrefix starts the subjects of the markers of a tenant's jobs
	// accepted and not yet ended (brig.active.<tenant>.<id>), in the
	// tenant's stream ActiveStream(tenant): the max_queued quota
	// (docs/design.md §10.3).
	ActivePrefix = "brig.active."
)

// SubmitSubject is where a client of tenant publishes a job for function fn.
func SubmitSubject(tenant, fn string) string { return SubmitPrefix + tenant + "." + fn }

// ParseSubmitSubject reads the tenant and the function a submission was
// published for; ok is false unless both are valid names.
func ParseSubmitSubject(subject string) (tenant, fn string, ok bool) {
	rest, ok := strings.CutPrefix(subject, SubmitPrefix)
	if !ok {
		return "", "", false
	}
	tenant, fn, ok = strings.Cut(rest, ".")
	if !ok || !ValidTenant(tenant) || !ValidName(fn) {
		return "", "", false
	}
	return tenant, fn, true
}

// WorkSubject is where a dispatcher routes jobs for pool.
func WorkSubject(pool string) string { return WorkPrefix + pool }

// EventSubject is where an event of the given type of the job with key
// jobKey (JobKey) is stored.
func EventSubject(jobKey string, t EventType) string { return EventsPrefix + jobKey + "." + string(t) }

// EventsFilter matches every event of one job, by its key.
func EventsFilter(jobKey string) string { return EventsPrefix + jobKey + ".>" }

// CancelSubject cancels a queued or running job, by its key:
// brig.cancel.<tenant>.<id>.
func CancelSubject(jobKey string) string { return CancelPrefix + jobKey }

// StatusSubject is where a client asks the dispatchers for its tenant's
// quotas and use (docs/design.md §10.3).
func StatusSubject(tenant string) string { return StatusPrefix + tenant }

// FunctionsSubject is where a client asks the dispatchers to list, read,
// deploy or delete its tenant's functions (docs/design.md §3.1).
func FunctionsSubject(tenant string) string { return FunctionsPrefix + tenant }

// BusyAnswer is the error a dispatcher answers a cancel or status request
// (or a functions request) with when it has too many in hand; the client should ask again.
const BusyAnswer = "busy; try again"

// ReplaySubject asks a dispatcher for a job's events, or whether it has
// any, by its key: brig.replay.<tenant>.<id>.
func ReplaySubject(jobKey string) string { return ReplayPrefix + jobKey }

// TerminalMsgID is the Nats-Msg-Id of a job's terminal event: the stream
// keeps one per job, whoever publishes it and however often.
func TerminalMsgID(jobKey string) string { return jobKey + ".terminal" }

// ActiveStream is the stream of a tenant's active-job markers; its
// MaxMsgs is the tenant's max_queued.
func ActiveStream(tenant string) string { return "BRIG_ACTIVE_" + tenant }

// ActiveSubject is the marker subject of the job with key jobKey:
// brig.active.<tenant>.<id>.
func ActiveSubject(jobKey string) string { return ActivePrefix + jobKey }

// KeyFromSubject reads the job key that ends subject after prefix
// (brig.cancel.<key>, brig.replay.<key>); ok is false unless it is a valid
// key.
func KeyFromSubject(subject, prefix string) (key string, ok bool) {
	key, ok = strings.CutPrefix(subject, prefix)
	return key, ok && ValidJobKey(key)
}
