package schema

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/distribution/reference"
)

// Bounds of a function definition.
const (
	// MaxFunctionBytes caps one encoded definition, as stored in the
	// function bucket.
	MaxFunctionBytes = 64 << 10
	MaxImageRefLen   = 255
	MaxCommandArgs   = 256
	// MaxPreload caps a function's preload list, MaxModuleName each entry.
	MaxPreload    = 64
	MaxModuleName = 128
	// MaxPrewarm caps a function's prewarm (a worker caps it again at its
	// PrewarmMax).
	MaxPrewarm = 64
)

// moduleRe is a dotted Python module name of ASCII identifiers.
var moduleRe = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$`)

// AllScopes in a function's scopes allows its jobs every scope they ask for.
const AllScopes = "*"

// DecodeFunction strictly decodes and validates a function definition,
// e.g. one read back from the function bucket.
func DecodeFunction(data []byte) (*Function, error) {
	var f Function
	if err := decodeStrict(data, &f, MaxFunctionBytes); err != nil {
		return nil, err
	}
	if err := f.Validate(); err != nil {
		return nil, err
	}
	return &f, nil
}

// Validate checks every field of a function definition. Its errors are
// *FieldError naming the field, as for jobs.
func (f *Function) Validate() error {
	if !ValidName(f.Name) {
		return fieldErr("name", "must be 1-%d characters of A-Z a-z 0-9 _ - starting with a letter or digit, got %q", maxIdentLen, clip(f.Name))
	}
	checks := []func() error{f.validateImage, f.validateCommand, f.validateEnv, f.validateCodeFile, f.validateScopes,
		f.validatePreload, f.validateEgress}
	for _, check := range checks {
		if err := check(); err != nil {
			return err
		}
	}
	if err := f.Limits.Validate("limits."); err != nil {
		return err
	}
	if err := f.Quotas.Validate("quotas."); err != nil {
		return err
	}
	switch {
	case f.TimeoutMS < 0 || f.TimeoutMS > MaxTimeoutMS:
		return fieldErr("timeout_ms", "must be between 1 and %d ms (0 for the default), got %d", MaxTimeoutMS, f.TimeoutMS)
	case f.Prewarm < 0 || f.Prewarm > MaxPrewarm:
		return fieldErr("prewarm", "must be between 0 and %d, got %d", MaxPrewarm, f.Prewarm)
	case f.Pool != "" && !ValidName(f.Pool):
		return fieldErr("pool", "must be empty (the default pool) or 1-%d characters of A-Z a-z 0-9 _ - starting with a letter or digit, got %q", maxIdentLen, clip(f.Pool))
	case f.Runtime != "" && f.Runtime != RuntimeRunc && f.Runtime != RuntimeRunsc:
		return fieldErr("runtime", "must be %q or %q, got %q", RuntimeRunc, RuntimeRunsc, clip(f.Runtime))
	case f.Runtime == RuntimeRunsc && f.SingleUse != nil && !*f.SingleUse:
		return fieldErr("single_use", "false is not available with runtime %q: gVisor lets a job read its init's memory, "+
			"so a reused sandbox could show one job's data to the next", RuntimeRunsc)
	}
	return nil
}

// validateImage accepts what Docker accepts as an image reference
// (name[:tag][@digest], registry and port allowed).
func (f *Function) validateImage() error {
	switch {
	case f.Image == "":
		return fieldErr("image", "is empty")
	case len(f.Image) > MaxImageRefLen:
		return fieldErr("image", "is longer than %d bytes", MaxImageRefLen)
	case !utf8.ValidString(f.Image) || strings.ContainsFunc(f.Image, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }):
		return fieldErr("image", "must not contain spaces or control characters, got %q", clip(f.Image))
	}
	if _, err := reference.ParseNormalizedNamed(f.Image); err != nil {
		return fieldErr("image", "is not a Docker image reference (%v), got %q", err, clip(f.Image))
	}
	return nil
}

func (f *Function) validateCommand() error {
	if err := validArgv("command", f.Command); err != nil {
		return err
	}
	if f.Warmup != nil {
		return validArgv("warmup", f.Warmup)
	}
	return nil
}

// validArgv checks a program and its arguments.
func validArgv(field string, argv []string) error {
	switch {
	case len(argv) == 0:
		return fieldErr(field, "is empty")
	case len(argv) > MaxCommandArgs:
		return fieldErr(field, "has %d entries, at most %d allowed", len(argv), MaxCommandArgs)
	case argv[0] == "":
		return fieldErr(field+"[0]", "is empty; it names the program to run")
	}
	for i, arg := range argv {
		if strings.ContainsRune(arg, 0) {
			return fieldErr(fmt.Sprintf("%s[%d]", field, i), "contains a NUL byte")
		}
	}
	return nil
}

// validateEnv applies exactly the rules of a job's env.
func (f *Function) validateEnv() error {
	probe := Job{Env: f.Env}
	return probe.validateEnv()
}

func (f *Function) validateEgress() error {
	if _, err := validateEgress("egress", f.Egress); err != nil {
		return err
	}
	return validateEgressMode(f.Egress, f.Network, f.SingleUse)
}

func (f *Function) validatePreload() error {
	if len(f.Preload) > MaxPreload {
		return fieldErr("preload", "has %d entries, at most %d allowed", len(f.Preload), MaxPreload)
	}
	for i, m := range f.Preload {
		if len(m) > MaxModuleName || !moduleRe.MatchString(m) {
			return fieldErr(fmt.Sprintf("preload[%d]", i), "must be a dotted module name of ASCII identifiers, at most %d bytes, got %q", MaxModuleName, clip(m))
		}
		if slices.Contains(strings.Split(m, "."), "__main__") {
			// X.__main__ runs a program at import (venv.__main__ builds a
			// venv), and __main__ is the driver itself.
			return fieldErr(fmt.Sprintf("preload[%d]", i), "must not name a __main__ module (it runs a program when imported), got %q", clip(m))
		}
	}
	return nil
}

func (f *Function) validateCodeFile() error {
	if f.CodeFile == "" {
		return nil
	}
	if err := validFilePath(f.CodeFile); err != nil {
		return fieldErr("code_file", "%s", err)
	}
	if f.CodeFile == "args.json" {
		return fieldErr("code_file", "clashes with args, which are written to args.json")
	}
	return nil
}

func (f *Function) validateScopes() error {
	if len(f.Scopes) > MaxScopes {
		return fieldErr("scopes", "has %d entries, at most %d allowed", len(f.Scopes), MaxScopes)
	}
	for i, s := range f.Scopes {
		if s == AllScopes {
			continue
		}
		if _, err := ParseScope(s); err != nil {
			return fieldErr(fmt.Sprintf("scopes[%d]", i), "%s (or %q for all)", err, AllScopes)
		}
	}
	return nil
}

// Validate checks each quota against its ceiling; prefix is put before the
// field names in errors (e.g. "quotas.").
func (q Quotas) Validate(prefix string) error {
	for _, c := range []struct {
		field string
		v     int64
		most  int64
	}{
		{"dict_mb", q.DictMB, MaxQuotaMB},
		{"dict_keys", q.DictKeys, MaxQuotaCount},
		{"queue_mb", q.QueueMB, MaxQuotaMB},
		{"queue_messages", q.QueueMessages, MaxQuotaCount},
		{"resources", q.Resources, MaxResources},
		{"calls", q.Calls, MaxCalls},
	} {
		if c.v < 0 || c.v > c.most {
			return fieldErr(prefix+c.field, "must be between 1 and %d (0 for the default), got %d", c.most, c.v)
		}
	}
	return nil
}
