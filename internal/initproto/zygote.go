package initproto

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// Zygote is what the init of a prewarmed single-use container needs to
// start a Python interpreter before its job arrives (docs/design.md §5.1):
// the job's command, the start-up variables the interpreter starts with,
// and the modules it imports while it waits. It travels as the argument of
// the init's --zygote flag, set by the worker at container creation, so it
// holds nothing of any job.
type Zygote struct {
	// Command is the job's command, [python3 /work/main.py]: a request
	// with any other command is not handed to the zygote.
	Command []string `json:"command"`
	// Dir is the job's working directory.
	Dir string `json:"dir"`
	// Env is the interpreter's environment: the start-up variables (see
	// StartupVar) the job's env will hold, sorted. A request whose
	// start-up variables differ is run by a plain exec instead.
	Env []string `json:"env"`
	// Preload lists the modules imported before the job.
	Preload []string `json:"preload,omitempty"`
}

// Bounds of a Zygote.
const (
	// MaxPreload caps Zygote.Preload (and a function's preload list).
	MaxPreload = 64
	// MaxModuleName caps one dotted module name.
	MaxModuleName = 128
	// MaxZygoteBytes caps the encoded Zygote.
	MaxZygoteBytes = 64 << 10
)

// moduleRe is a dotted Python module name of ASCII identifiers.
var moduleRe = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$`)

// ValidModule reports whether name is a dotted module name of ASCII
// identifiers, at most MaxModuleName bytes.
func ValidModule(name string) bool {
	return len(name) <= MaxModuleName && moduleRe.MatchString(name)
}

// startupVars are the variables read once when a process starts (by the
// dynamic loader, libc or CPython's start-up) rather than when used: a job
// that sets them differently from the zygote cannot be run in it.
var (
	startupPrefixes = []string{"PYTHON", "LD_", "LC_", "MALLOC_", "OPENSSL_"}
	startupNames    = []string{"GLIBC_TUNABLES", "HOME", "LANG", "LANGUAGE", "PATH"}
)

// StartupVar reports whether an environment variable is read at start-up.
func StartupVar(name string) bool {
	for _, p := range startupPrefixes {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return slices.Contains(startupNames, name)
}

// StartupEnv returns the start-up variables of env ("NAME=value"), sorted.
func StartupEnv(env []string) []string {
	var out []string
	for _, kv := range env {
		name, _, _ := strings.Cut(kv, "=")
		if StartupVar(name) {
			out = append(out, kv)
		}
	}
	slices.Sort(out)
	return out
}

// Accepts reports whether the zygote can run req exactly as a plain exec
// of req.Command would: the same command, the same start-up variables,
// and a single-use sandbox.
func (z *Zygote) Accepts(req *Request) bool {
	return !req.Reuse && req.NProc == 0 && req.Dir == z.Dir && slices.Equal(req.Command, z.Command) &&
		slices.Equal(StartupEnv(req.Env), z.Env)
}

// Encode returns z as the init's --zygote argument.
func (z *Zygote) Encode() (string, error) {
	if err := z.validate(); err != nil {
		return "", err
	}
	data, err := json.Marshal(z)
	if err != nil {
		return "", fmt.Errorf("encode zygote: %w", err)
	}
	return string(data), nil
}

// DecodeZygote reads the init's --zygote argument.
func DecodeZygote(arg string) (*Zygote, error) {
	if len(arg) > MaxZygoteBytes {
		return nil, fmt.Errorf("zygote is %d bytes: %w", len(arg), ErrFrameTooLarge)
	}
	var z Zygote
	if err := json.Unmarshal([]byte(arg), &z); err != nil {
		return nil, fmt.Errorf("decode zygote: %w", err)
	}
	if err := z.validate(); err != nil {
		return nil, err
	}
	return &z, nil
}

func (z *Zygote) validate() error {
	switch {
	case len(z.Command) != 2 || z.Command[0] == "" || z.Command[1] == "":
		return errors.New("zygote command must be an interpreter and a script")
	case !strings.HasPrefix(z.Dir, "/"):
		return errors.New("zygote dir must be an absolute path")
	case !slices.IsSorted(z.Env):
		return errors.New("zygote env is not sorted")
	case len(z.Preload) > MaxPreload:
		return fmt.Errorf("zygote preloads %d modules, at most %d", len(z.Preload), MaxPreload)
	}
	for _, m := range z.Preload {
		if !ValidModule(m) {
			return fmt.Errorf("zygote preload %q is not a module name", m)
		}
	}
	for _, kv := range z.Env {
		name, _, ok := strings.Cut(kv, "=")
		if !ok || !StartupVar(name) || strings.ContainsRune(kv, 0) {
			return fmt.Errorf("zygote env %q is not a start-up variable", kv)
		}
	}
	return nil
}
