package schema

import (
	"bytes"
	"encoding/json"
	"fmt"
	"path"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Bounds a job must stay within. A function may lower them, never raise them.
const (
	MaxTimeoutMS   = 60 * 60 * 1000
	MaxFiles       = 256
	MaxFilePathLen = 255
	MaxEnv         = 128
	MaxScopes      = 64
	MaxRetries     = 10
	MinMemoryMB    = 16
	MaxMemoryMB    = 64 << 10
	MaxCPUs        = 64
	MinPids        = 8
	// MinRunscMemoryMB is the smallest memory limit a gVisor (runsc) job
	// may have: gVisor's kernel is charged to the container.
	MinRunscMemoryMB = 64
	MaxPids          = 1 << 16
	MaxOutputBytes   = 1 << 20
	MaxReplyToLen    = 256
	MaxResultBytes   = 256 << 10
	maxIdentLen      = 64
	reservedEnvPfx   = "BRIG_"
	reservedOutPath  = "out"
)

var (
	idRe     = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
	nameRe   = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$`)
	envKeyRe = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,127}$`)
)

// ValidID reports whether s may be a job id: it becomes a subject token, so
// no dots, wildcards or spaces.
func ValidID(s string) bool { return idRe.MatchString(s) }

// ValidName reports whether s may name a function, pool, dict or queue.
func ValidName(s string) bool { return nameRe.MatchString(s) }

// Validate checks every field of a decoded job, as a client submits it:
// its id is the client's (ValidID), not a key.
func (j *Job) Validate() error {
	if !ValidID(j.ID) {
		return fieldErr("id", "must be 1-%d characters of A-Z a-z 0-9 _ -, got %q", maxIdentLen, clip(j.ID))
	}
	if err := j.validateFields(); err != nil {
		return err
	}
	return j.validateRestricted()
}

// ScopesNeedUnrestricted is why a job that asks for scopes while
// restricted is refused: a restricted job is granted none, so its scopes
// would be dropped without a word and the job would fail later on
// AuthError (docs/design.md §4.1).
const ScopesNeedUnrestricted = "must be false when scopes are asked for; a restricted job (the default) is granted no scopes"

// validateRestricted refuses a job that asks for scopes and says
// restricted: true. A job that leaves restricted out takes its function's
// default, which only the dispatcher knows: it refuses the job with the
// same message once it has merged the two (dispatcher.dispatch). Only
// submissions are checked; a work message's spec carries that decision.
func (j *Job) validateRestricted() error {
	if len(j.Scopes) > 0 && Bool(j.Restricted, false) {
		return fieldErr("restricted", ScopesNeedUnrestricted)
	}
	return nil
}

// Validate checks a decoded work message's job and run spec. The job's id
// in a work message is its key (JobKey): the dispatcher names the job the
// way every event, token and subject does.
func (w *Work) Validate() error {
	if !ValidJobKey(w.Job.ID) {
		return fieldErr("job.id", "must be a job key <tenant>.<id>, got %q", clip(w.Job.ID))
	}
	if err := w.Job.validateFields(); err != nil {
		return err
	}
	return w.Spec.Validate()
}

func (j *Job) validateFields() error {
	if !ValidName(j.Function) {
		return fieldErr("function", "must be 1-%d characters of A-Z a-z 0-9 _ - starting with a letter or digit, got %q", maxIdentLen, clip(j.Function))
	}
	checks := []func() error{
		j.validateArgs, j.validateFiles, j.validateEnv, j.validateReplyTo,
		j.validateNumbers, j.validateScopes, j.validateEgress,
	}
	for _, check := range checks {
		if err := check(); err != nil {
			return err
		}
	}
	if j.Runtime != "" && j.Runtime != RuntimeRunc && j.Runtime != RuntimeRunsc {
		return fieldErr("runtime", "must be %q or %q, got %q", RuntimeRunc, RuntimeRunsc, clip(j.Runtime))
	}
	return nil
}

func (j *Job) validateArgs() error {
	if len(j.Args) > 0 && !bytes.Equal(bytes.TrimSpace(j.Args), []byte("null")) {
		// json.RawMessage already guarantees well-formed JSON after decoding;
		// a Job built in Go may still carry garbage.
		if !json.Valid(j.Args) {
			return fieldErr("args", "is not valid JSON")
		}
	}
	return nil
}

func (j *Job) validateFiles() error {
	if len(j.Files) > MaxFiles {
		return fieldErr("files", "has %d entries, at most %d allowed", len(j.Files), MaxFiles)
	}
	for p := range j.Files {
		if err := validFilePath(p); err != nil {
			return fieldErr(fmt.Sprintf("files[%q]", clip(p)), "%s", err)
		}
		for dir := path.Dir(p); dir != "."; dir = path.Dir(dir) {
			if _, isFile := j.Files[dir]; isFile || (j.Code != "" && dir == DefaultCodeFile) || (len(j.Args) > 0 && dir == "args.json") {
				return fieldErr(fmt.Sprintf("files[%q]", clip(p)), "lies inside %q, which is a file", dir)
			}
		}
		if j.Code != "" && p == "main.py" {
			return fieldErr(`files["main.py"]`, "clashes with code, which is written to main.py")
		}
		if p == "args.json" && len(j.Args) > 0 {
			return fieldErr(`files["args.json"]`, "clashes with args, which are written to args.json")
		}
	}
	return nil
}

// ValidateFor checks what only the job's function decides: the job's
// files must not clash with where its code goes (spec.CodeFile), which the
// init would find only when it lays out /work, too late for a clear error.
func (j *Job) ValidateFor(spec *RunSpec) error {
	if j.Code == "" || spec.CodeFile == "" {
		return nil
	}
	code := spec.CodeFile
	for p := range j.Files {
		switch {
		case p == code:
			return fieldErr(fmt.Sprintf("files[%q]", clip(p)), "clashes with code, which this function writes to %q", code)
		case strings.HasPrefix(p, code+"/"):
			return fieldErr(fmt.Sprintf("files[%q]", clip(p)), "lies inside %q, where this function writes the code", code)
		case strings.HasPrefix(code, p+"/"):
			return fieldErr(fmt.Sprintf("files[%q]", clip(p)), "is a file where this function writes the code to %q", code)
		}
	}
	return nil
}

// validFilePath accepts only clean relative paths that stay inside /work.
func validFilePath(p string) error {
	switch {
	case p == "":
		return fmt.Errorf("path is empty")
	case len(p) > MaxFilePathLen:
		return fmt.Errorf("path is longer than %d bytes", MaxFilePathLen)
	case !utf8.ValidString(p):
		return fmt.Errorf("path is not valid UTF-8")
	case strings.ContainsFunc(p, unicode.IsControl):
		return fmt.Errorf("path contains a control character")
	case strings.HasPrefix(p, "/"):
		return fmt.Errorf("path must be relative to /work, not absolute")
	case path.Clean(p) != p || p == ".":
		return fmt.Errorf("path must be clean (no '.', '..', '//' or trailing '/')")
	case p == ".." || strings.HasPrefix(p, "../"):
		return fmt.Errorf("path leaves /work")
	case p == reservedOutPath || strings.HasPrefix(p, reservedOutPath+"/"):
		return fmt.Errorf("path is inside out/, which is reserved for results")
	}
	return nil
}

func (j *Job) validateEnv() error {
	if len(j.Env) > MaxEnv {
		return fieldErr("env", "has %d entries, at most %d allowed", len(j.Env), MaxEnv)
	}
	for k, v := range j.Env {
		field := fmt.Sprintf("env[%q]", clip(k))
		switch {
		case !envKeyRe.MatchString(k):
			return fieldErr(field, "name must match %s", envKeyRe)
		case strings.HasPrefix(k, reservedEnvPfx):
			return fieldErr(field, "names starting with %s are reserved for brig", reservedEnvPfx)
		case strings.ContainsRune(v, 0):
			return fieldErr(field, "value contains a NUL byte")
		}
	}
	return nil
}

func (j *Job) validateReplyTo() error {
	if j.ReplyTo == "" {
		return nil
	}
	if err := validSubject(j.ReplyTo); err != nil {
		return fieldErr("reply_to", "%s", err)
	}
	if !strings.HasPrefix(j.ReplyTo, ReplyPrefix) && !ownEvents(j.ReplyTo, j.ID) {
		// brig's roles publish the copies, and may publish only on inboxes
		// (docs/design.md §10): a client can subscribe nowhere else. The
		// tenant's own inbox prefix is the dispatcher's check
		// (ReplyToAllowed): a job alone does not know its tenant.
		return fieldErr("reply_to", "must be an inbox subject %s... (or this job's own %s<tenant>.%s.>)", ReplyPrefix, EventsPrefix, j.ID)
	}
	return nil
}

// ownEvents reports whether replyTo lies in the events of job id: under
// brig.events.<key>. when id is a key, under brig.events.<tenant>.<id>. for
// some tenant when it is a client's id.
func ownEvents(replyTo, id string) bool {
	rest, ok := strings.CutPrefix(replyTo, EventsPrefix)
	if !ok {
		return false
	}
	if ValidJobKey(id) {
		return strings.HasPrefix(rest, id+".")
	}
	tenant, rest, ok := strings.Cut(rest, ".")
	return ok && ValidTenant(tenant) && strings.HasPrefix(rest, id+".")
}

// ReplyToAllowed reports whether a job of tenant with key jobKey may name
// replyTo as its reply_to (docs/design.md §10.3): under the tenant's inbox
// prefix _INBOX.<tenant>., or in the job's own events brig.events.<key>.
// (where no copy is sent). Empty is allowed.
func ReplyToAllowed(tenant, jobKey, replyTo string) bool {
	return replyTo == "" || strings.HasPrefix(replyTo, InboxPrefix(tenant)+".") ||
		strings.HasPrefix(replyTo, EventsPrefix+jobKey+".")
}

// IsInboxOf reports whether subject is a literal subject under tenant's
// inbox prefix _INBOX.<tenant>.: where brig may answer or copy to for a
// client of that tenant (docs/design.md §10.2).
func IsInboxOf(tenant, subject string) bool {
	return ValidTenant(tenant) && strings.HasPrefix(subject, InboxPrefix(tenant)+".") && validSubject(subject) == nil
}

// validSubject accepts a literal NATS subject a job may publish its events to.
func validSubject(s string) error {
	switch {
	case len(s) > MaxReplyToLen:
		return fmt.Errorf("is longer than %d bytes", MaxReplyToLen)
	case strings.HasPrefix(s, "$"):
		return fmt.Errorf("must not be a system subject ($...)")
	case strings.ContainsFunc(s, func(r rune) bool { return r <= ' ' || r == 0x7f || r == '*' || r == '>' }):
		return fmt.Errorf("must be a literal subject: no spaces, control characters or wildcards")
	}
	for _, tok := range strings.Split(s, ".") {
		if tok == "" {
			return fmt.Errorf("has an empty token")
		}
	}
	return nil
}

func (j *Job) validateNumbers() error {
	if j.TimeoutMS < 0 || j.TimeoutMS > MaxTimeoutMS {
		return fieldErr("timeout", "must be between 1 and %d ms (0 for the default), got %d", MaxTimeoutMS, j.TimeoutMS)
	}
	if j.Retries < 0 || j.Retries > MaxRetries {
		return fieldErr("retries", "must be between 0 and %d, got %d", MaxRetries, j.Retries)
	}
	if j.Limits == nil {
		return nil
	}
	return j.Limits.Validate("limits.")
}

// Validate checks limits against brig's bounds; zero fields mean "default".
func (l Limits) Validate(prefix string) error {
	switch {
	case l.MemoryMB != 0 && (l.MemoryMB < MinMemoryMB || l.MemoryMB > MaxMemoryMB):
		return fieldErr(prefix+"memory_mb", "must be between %d and %d, got %d", MinMemoryMB, MaxMemoryMB, l.MemoryMB)
	case l.CPUs != 0 && (l.CPUs < 0.01 || l.CPUs > MaxCPUs):
		return fieldErr(prefix+"cpus", "must be between 0.01 and %d, got %g", MaxCPUs, l.CPUs)
	case l.Pids != 0 && (l.Pids < MinPids || l.Pids > MaxPids):
		return fieldErr(prefix+"pids", "must be between %d and %d, got %d", MinPids, MaxPids, l.Pids)
	case l.OutputBytes != 0 && (l.OutputBytes < 1 || l.OutputBytes > MaxOutputBytes):
		return fieldErr(prefix+"output_bytes", "must be between 1 and %d, got %d", MaxOutputBytes, l.OutputBytes)
	}
	return nil
}

func (j *Job) validateEgress() error {
	if _, err := validateEgress("egress", j.Egress); err != nil {
		return err
	}
	return validateEgressMode(j.Egress, j.Network, j.SingleUse)
}

func (j *Job) validateScopes() error {
	if len(j.Scopes) > MaxScopes {
		return fieldErr("scopes", "has %d entries, at most %d allowed", len(j.Scopes), MaxScopes)
	}
	for i, s := range j.Scopes {
		if _, err := ParseScope(s); err != nil {
			return fieldErr(fmt.Sprintf("scopes[%d]", i), "%s", err)
		}
	}
	return nil
}

// Validate checks a resolved run spec.
func (s *RunSpec) Validate() error {
	switch {
	case !ValidName(s.Function):
		return fieldErr("spec.function", "is not a valid name")
	case s.Image == "" && !s.Echo:
		return fieldErr("spec.image", "is empty")
	case len(s.Command) == 0 && !s.Echo:
		return fieldErr("spec.command", "is empty")
	case s.Runtime == RuntimeRunsc && s.Limits.MemoryMB != 0 && s.Limits.MemoryMB < MinRunscMemoryMB:
		return fieldErr("limits.memory_mb", "must be at least %d with runtime %q: gVisor's own kernel lives in the job's memory, and the job would end killed before its first instruction",
			MinRunscMemoryMB, RuntimeRunsc)
	case !s.SingleUse && s.Runtime == RuntimeRunsc:
		return fieldErr("single_use", "false is not available with runtime %q: gVisor lets a job read its init's memory, "+
			"so a reused sandbox could show one job's data to the next", RuntimeRunsc)
	case !ValidName(s.Pool):
		return fieldErr("spec.pool", "is not a valid name")
	case s.Prewarm < 0 || s.Prewarm > MaxPrewarm:
		return fieldErr("spec.prewarm", "must be between 0 and %d", MaxPrewarm)
	case s.TimeoutMS < 1 || s.TimeoutMS > MaxTimeoutMS:
		return fieldErr("spec.timeout_ms", "must be between 1 and %d", MaxTimeoutMS)
	case s.Runtime != RuntimeRunc && s.Runtime != RuntimeRunsc:
		return fieldErr("spec.runtime", "must be %q or %q", RuntimeRunc, RuntimeRunsc)
	case s.Limits.MemoryMB == 0 || s.Limits.CPUs == 0 || s.Limits.Pids == 0 || s.Limits.OutputBytes == 0:
		return fieldErr("spec.limits", "must be fully resolved")
	}
	if err := s.validateEgress(); err != nil {
		return err
	}
	return s.Limits.Validate("spec.limits.")
}

// Validate checks the fields every event must carry.
func (e *Event) Validate() error {
	switch {
	case !ValidJobKey(e.JobID):
		return fieldErr("job_id", "is not a valid job key <tenant>.<id>")
	case e.Type == "":
		return fieldErr("type", "is empty")
	case IsTerminal(e.Type) && e.Status == "":
		return fieldErr("status", "is required on a terminal event")
	}
	return nil
}

func clip(s string) string {
	const max = 80
	if len(s) <= max {
		return s
	}
	return s[:max] + "..."
}
