package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/brig-dev/brig/schema"
	"github.com/brig-dev/brig/sdk"
)

// postJob submits a job: POST /v1/jobs[?wait=DUR]. An id brig has already
// is never submitted again: the answer is that job's state.
func (s *Server) postJob(ctx context.Context, c *call) error {
	wait, p := parseWait(c.r)
	if p != nil {
		return p
	}
	data, p := s.readBody(c, s.cfg.MaxJobBytes)
	if p != nil {
		return p
	}
	// The body is within MaxJobBytes (readBody); the id withKey may add
	// is brig's, not the client's, and gets room of its own.
	fresh := sdk.NewJobID()
	job, err := schema.DecodeJob(withKey(data, "id", fresh), s.cfg.MaxJobBytes+idRoom)
	if err != nil {
		return jobProblem(err)
	}
	c.extendWrite(wait, s.cfg.WriteTimeout)
	// Only a client's own id may be one brig has: a fresh one is random.
	var st *sdk.JobState
	err = sdk.ErrNotFound
	if job.ID != fresh {
		st, err = s.ask(ctx, func(ctx context.Context) (*sdk.JobState, error) { return c.client.Job(ctx, job.ID) })
	}
	var h *sdk.Handle
	switch {
	case err == nil && (st.Terminal != nil || wait == 0):
		return s.answer(c, st)
	case err == nil:
		h, err = c.client.Watch(ctx, job.ID)
	case errors.Is(err, sdk.ErrNotFound):
		h, err = s.submit(ctx, c, *job)
	}
	if err != nil {
		return asProblem(err, "job "+job.ID)
	}
	defer h.Stop()
	if wait == 0 {
		return s.answer(c, &sdk.JobState{ID: job.ID, Key: h.Key, Status: sdk.StatusQueued})
	}
	return s.await(ctx, c, h, wait)
}

// idRoom is what `"id":"<fresh id>",` adds to a body.
const idRoom = 64

// submit submits job within AskTimeout.
func (s *Server) submit(ctx context.Context, c *call, job schema.Job) (*sdk.Handle, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.AskTimeout)
	defer cancel()
	h, err := c.client.Submit(ctx, job)
	var je *sdk.JobError
	if errors.As(err, &je) && je.Event.Error != nil { // refused before it was sent
		return nil, problem(http.StatusBadRequest, TypeInvalidJob, "%s", je.Event.Error.Message)
	}
	return h, err
}

// jobProblem is the problem of a body that is not a valid job.
func jobProblem(err error) *Problem {
	var fe *schema.FieldError
	if errors.Is(err, schema.ErrTooLarge) {
		return problem(http.StatusRequestEntityTooLarge, TypeTooLarge, "invalid job: %v", err).withField("(message)")
	}
	p := problem(http.StatusBadRequest, TypeInvalidJob, "invalid job: %v", err)
	if errors.As(err, &fe) {
		p.Field = fe.Field
	}
	return p
}

// getJob answers a job's state: GET /v1/jobs/{id}[?wait=DUR].
func (s *Server) getJob(ctx context.Context, c *call) error {
	id, p := jobIDOf(c.r)
	if p != nil {
		return p
	}
	wait, p := parseWait(c.r)
	if p != nil {
		return p
	}
	c.extendWrite(wait, s.cfg.WriteTimeout)
	st, err := s.ask(ctx, func(ctx context.Context) (*sdk.JobState, error) { return c.client.Job(ctx, id) })
	unknown := errors.Is(err, sdk.ErrNotFound)
	switch {
	case err != nil && !(unknown && wait > 0):
		return asProblem(err, "job "+id)
	case err == nil && (st.Terminal != nil || wait == 0):
		return s.answer(c, st)
	}
	h, err := c.client.Watch(ctx, id)
	if err != nil {
		return asProblem(err, "job "+id)
	}
	defer h.Stop()
	if unknown && !heard(ctx, h, min(wait, AcceptWait)) {
		return problem(http.StatusNotFound, TypeNotFound, "job %s: brig has none in this tenant (waited %s for it)", id, min(wait, AcceptWait))
	}
	return s.await(ctx, c, h, wait)
}

// AcceptWait is how long GET ?wait, an event stream and a cancellation
// wait for the first event of a job brig has no event of yet (its
// submission may be on its way: a client that posted without wait asks
// at once) before they answer 404.
const AcceptWait = 10 * time.Second

// awaitKnown asks brig whether it has job id, and asks again while the
// answer is NotFound, for at most d: a job just posted may not be taken by
// a dispatcher yet. Its error is the last answer's.
func awaitKnown(ctx context.Context, client *sdk.Client, id string, d time.Duration) error {
	deadline := time.Now().Add(d)
	for pause := 100 * time.Millisecond; ; pause = min(2*pause, time.Second) {
		_, err := client.Job(ctx, id)
		// One peek that timed out on a loaded machine is asked again while
		// the caller's own budget lasts: brig was slow, not absent.
		slow := errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil
		if slow {
			continue
		}
		if !errors.Is(err, sdk.ErrNotFound) || time.Now().Add(pause).After(deadline) {
			return err
		}
		select {
		case <-time.After(pause):
		case <-ctx.Done():
			return err
		}
	}
}

// heard reports whether the handle's job has an event within d.
func heard(ctx context.Context, h *sdk.Handle, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case _, ok := <-h.Events():
		return ok
	case <-t.C:
	case <-ctx.Done():
	}
	return false
}

// await waits up to wait for the job's terminal event and answers its
// state. A client that goes away ends the wait, never the job.
func (s *Server) await(ctx context.Context, c *call, h *sdk.Handle, wait time.Duration) error {
	wctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	if ev, _ := h.Result(wctx); ev != nil {
		return s.answer(c, &sdk.JobState{ID: h.ID, Key: h.Key, Status: ev.Status, Terminal: ev})
	}
	if ctx.Err() != nil {
		return nil // the client went away
	}
	st, err := s.ask(ctx, func(ctx context.Context) (*sdk.JobState, error) { return c.client.Job(ctx, h.ID) })
	switch {
	case errors.Is(err, sdk.ErrNotFound): // submitted, not yet taken
		st = &sdk.JobState{ID: h.ID, Key: h.Key, Status: sdk.StatusQueued}
	case err != nil:
		return asProblem(err, "job "+h.ID)
	}
	return s.answer(c, st)
}

// ask runs one question to brig within AskTimeout.
func (s *Server) ask(ctx context.Context, q func(context.Context) (*sdk.JobState, error)) (*sdk.JobState, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.AskTimeout)
	defer cancel()
	return q(ctx)
}

// answer sends a job's state: 200 once it has ended, else 202 with its
// Location.
func (s *Server) answer(c *call, st *sdk.JobState) error {
	status := http.StatusOK
	if st.Terminal == nil {
		status = http.StatusAccepted
		if c.r.Method == http.MethodGet {
			status = http.StatusOK
		}
		c.w.Header().Set("Location", "/v1/jobs/"+st.ID)
	}
	writeJSON(c.w, status, st)
	return nil
}

// cancelJob cancels a job: POST /v1/jobs/{id}/cancel.
func (s *Server) cancelJob(ctx context.Context, c *call) error {
	id, p := jobIDOf(c.r)
	if p != nil {
		return p
	}
	return reply(s, ctx, c, "job "+id, func(ctx context.Context) (any, error) {
		status, err := c.client.Cancel(ctx, id)
		if errors.Is(err, sdk.ErrNotFound) && awaitKnown(ctx, c.client, id, AcceptWait) == nil {
			status, err = c.client.Cancel(ctx, id) // it was on its way
		}
		return map[string]any{"id": id, "job_id": schema.JobKey(c.tenant, id), "status": status}, err
	})
}

// status answers the tenant's quotas and use: GET /v1/status.
func (s *Server) status(ctx context.Context, c *call) error {
	return reply(s, ctx, c, "status of tenant "+c.tenant, c.client.Status)
}

// reply asks brig q within AskTimeout and sends its answer, 200 and JSON,
// or the problem of its error (subject names what was asked about).
func reply[T any](s *Server, ctx context.Context, c *call, subject string, q func(context.Context) (T, error)) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.AskTimeout)
	defer cancel()
	v, err := q(ctx)
	if err != nil {
		return asProblem(err, subject)
	}
	writeJSON(c.w, http.StatusOK, v)
	return nil
}

// jobIDOf reads the {id} of the path.
func jobIDOf(r *http.Request) (string, *Problem) {
	id := r.PathValue("id")
	if !schema.ValidID(id) {
		return "", invalidRequest("id", "job id %q: 1-64 characters of A-Z a-z 0-9 _ -", clipText(id))
	}
	return id, nil
}

// writeJSON sends v as JSON.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
