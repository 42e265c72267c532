package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"unicode/utf8"

	"github.com/brig-dev/brig/schema"
)

// jobInput is what brig run's flags give a job besides its code
// (docs/design.md §7): its stdin, args, files and environment. The flags
// only collect; build reads the files and checks what the schema cannot.
type jobInput struct {
	stdin *string // --stdin FILE|-; nil when not given
	args  *string // --args JSON|@FILE; nil when not given
	files multiFlag
	env   multiFlag
	// taken counts the bytes read so far: the inputs together must fit
	// the submission, so each read gets what the ones before it left.
	taken int
}

// addInputFlags registers --stdin, --args, --file and --env.
func addInputFlags(fs *flag.FlagSet) *jobInput {
	in := &jobInput{}
	fs.Func("stdin", "the job's stdin: the content of `FILE`, or brig's own stdin for - (the code must then come from FILE, not -)", optional(&in.stdin))
	fs.Func("args", "the job's args, written to /work/args.json: a `JSON` value, or @FILE for a file's (@- for stdin)", optional(&in.args))
	fs.Var(&in.files, "file", "`LOCAL[:PATH]`: put the content of the file LOCAL at /work/PATH (default: LOCAL's base name; LOCAL holds no ':'; repeatable)")
	fs.Var(&in.env, "env", "`K=V`: set the job's environment variable K to V (repeatable)")
	return in
}

// optional sets *p to a flag's value, so that nil tells "not given" from
// an empty value. A second value is refused for every flag that takes one
// (refuseRepeats).
func optional(p **string) func(string) error {
	return func(v string) error {
		*p = &v
		return nil
	}
}

// usageError is a command line brig run cannot make a job of: exit 2,
// and nothing is sent.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// tooLargeError is an input over the submission limit
// (schema.DefaultMaxJobBytes): the job could not be sent, and brig run
// rejects it as the dispatcher would (exit 125), before anything is sent.
type tooLargeError struct {
	what string
	// after is how many bytes the inputs read before it took.
	after int
}

func (e *tooLargeError) Error() string {
	if e.after > 0 {
		return fmt.Sprintf("%s, with the %d bytes of the inputs before it, is over the %d-byte (512 KiB) submission limit", e.what, e.after, schema.DefaultMaxJobBytes)
	}
	return fmt.Sprintf("%s is over the %d-byte (512 KiB) submission limit", e.what, schema.DefaultMaxJobBytes)
}

// build fills job from the code argument (a file, or - for stdin) and the
// input flags. Its errors are *usageError, or *tooLargeError for an input
// that cannot fit the submission. Whether the job as a whole is valid,
// paths and names included, is the schema's to say (checkJob).
func (in *jobInput) build(job *schema.Job, codeArg string, stdin io.Reader) error {
	if err := in.checkStdinReaders(codeArg); err != nil {
		return err
	}
	code, err := in.read("code", codeArg, stdin)
	if err != nil {
		return err
	}
	job.Code = code
	if in.stdin != nil {
		if job.Stdin, err = in.read("--stdin "+*in.stdin, *in.stdin, stdin); err != nil {
			return err
		}
	}
	if in.args != nil {
		if job.Args, err = in.readArgs(stdin); err != nil {
			return err
		}
	}
	if job.Files, err = in.readFiles(stdin); err != nil {
		return err
	}
	job.Env, err = in.readEnv()
	return err
}

// checkStdinReaders allows one input at most to read brig's stdin, and
// none but --stdin once --stdin is given: the code then comes from a file.
func (in *jobInput) checkStdinReaders(codeArg string) error {
	var readers []string
	if codeArg == "-" {
		readers = append(readers, "the code (FILE -)")
	}
	if in.stdin != nil && *in.stdin == "-" {
		readers = append(readers, "--stdin -")
	}
	if in.args != nil && *in.args == "@-" {
		readers = append(readers, "--args @-")
	}
	for _, f := range in.files {
		if local, _, _ := strings.Cut(f, ":"); local == "-" {
			readers = append(readers, "--file "+f)
		}
	}
	switch {
	case in.stdin != nil && codeArg == "-":
		return usagef("with --stdin the code comes from FILE, not from stdin: name the code's file")
	case len(readers) > 1:
		return usagef("%s all read stdin: only one may", strings.Join(readers, ", "))
	}
	return nil
}

// readArgs reads --args: inline JSON, or @FILE's. It must be one JSON
// value; the schema checks the rest.
func (in *jobInput) readArgs(stdin io.Reader) (json.RawMessage, error) {
	what, data := "--args", *in.args
	if name, ok := strings.CutPrefix(data, "@"); ok {
		what = "--args " + data
		var err error
		if data, err = in.read(what, name, stdin); err != nil {
			return nil, err
		}
	} else if !utf8.ValidString(data) {
		return nil, usagef("--args: not valid UTF-8")
	}
	raw := bytes.TrimSpace([]byte(data))
	if len(raw) == 0 {
		return nil, usagef("%s: empty: give a JSON value, e.g. --args '{\"n\": 3}'", what)
	}
	var v json.RawMessage
	if err := json.Unmarshal(raw, &v); err != nil {
		var syn *json.SyntaxError
		if errors.As(err, &syn) {
			return nil, usagef("%s: not valid JSON: %v (at byte %d)", what, err, syn.Offset)
		}
		return nil, usagef("%s: not valid JSON: %v", what, err)
	}
	return v, nil
}

// readFiles reads each --file LOCAL[:PATH]. Two flags for one PATH are
// refused: one would be lost.
func (in *jobInput) readFiles(stdin io.Reader) (map[string]string, error) {
	if len(in.files) == 0 {
		return nil, nil
	}
	files := make(map[string]string, len(in.files))
	for _, spec := range in.files {
		local, path, named := strings.Cut(spec, ":")
		switch {
		case local == "":
			return nil, usagef("--file %q: LOCAL is empty (--file LOCAL[:PATH])", spec)
		case named && path == "":
			return nil, usagef("--file %q: PATH after ':' is empty (--file LOCAL[:PATH])", spec)
		case !named && local == "-":
			return nil, usagef("--file -: name the PATH the content of stdin goes to: --file -:PATH")
		case !named:
			path = filepath.Base(local)
		}
		if _, dup := files[path]; dup {
			return nil, usagef("--file %q: another --file writes /work/%s too", spec, path)
		}
		content, err := in.read("--file "+spec, local, stdin)
		if err != nil {
			return nil, err
		}
		files[path] = content
	}
	return files, nil
}

// readEnv reads each --env K=V. A name given twice is refused: one value
// would be lost.
func (in *jobInput) readEnv() (map[string]string, error) {
	if len(in.env) == 0 {
		return nil, nil
	}
	env := make(map[string]string, len(in.env))
	for _, kv := range in.env {
		k, v, ok := strings.Cut(kv, "=")
		switch {
		case !ok || k == "":
			return nil, usagef("--env %q: want K=V", kv)
		case !utf8.ValidString(v):
			return nil, usagef("--env %s: the value is not valid UTF-8", k)
		}
		if _, dup := env[k]; dup {
			return nil, usagef("--env %s given twice", k)
		}
		env[k] = v
	}
	return env, nil
}

// read reads one input with what the inputs read before it left of the
// submission limit, so that N inputs never hold more than the limit (plus
// one byte) in memory together.
func (in *jobInput) read(what, name string, stdin io.Reader) (string, error) {
	data, err := readInput(what, name, stdin, schema.DefaultMaxJobBytes-in.taken)
	var large *tooLargeError
	if errors.As(err, &large) {
		large.after = in.taken
	}
	in.taken += len(data)
	return data, err
}

// readInput reads a file brig run sends (or brig's stdin for "-"): at
// most one byte over limit, since a larger one cannot be sent and an
// endless one must not be held in memory. The content must be UTF-8:
// brig carries code, stdin and files as JSON strings, which would turn
// other bytes into U+FFFD without a word.
func readInput(what, name string, stdin io.Reader, limit int) (string, error) {
	r := stdin
	if name != "-" {
		f, err := os.Open(name)
		if err != nil {
			return "", usagef("%s: %v", what, err)
		}
		defer f.Close()
		r = f
	}
	data, err := io.ReadAll(io.LimitReader(r, int64(limit)+1))
	switch {
	case err != nil:
		return "", usagef("%s: read: %v", what, err)
	case len(data) > limit:
		return "", &tooLargeError{what: what}
	case !utf8.Valid(data):
		return "", usagef("%s: not UTF-8 text (brig carries a job's code, stdin and files as JSON strings)", what)
	}
	return string(data), nil
}

// checkJob is the dispatcher's own check of a submission (docs/design.md
// §2.1, §13.1): the job as sent, strictly decoded within the default
// submission limit, then validated. Run before anything is sent, it
// refuses a job brig would reject, a too-large one first, naming the
// field or the limit.
func checkJob(job *schema.Job) error {
	data, err := schema.Marshal(job)
	if err != nil {
		return err
	}
	if _, err := schema.DecodeJob(data, schema.DefaultMaxJobBytes); err != nil {
		if errors.Is(err, schema.ErrTooLarge) {
			return fmt.Errorf("the submission is %d bytes, over the %d-byte (512 KiB) limit", len(data), schema.DefaultMaxJobBytes)
		}
		return err
	}
	return nil
}
