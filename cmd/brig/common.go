package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
)

const defaultServer = "nats://127.0.0.1:4222"

// serverFlag registers --server. explicit reports whether the user chose a
// server (flag or BRIG_SERVER), which forbids falling back to an embedded
// brig.
type serverFlag struct {
	url      string
	explicit bool
}

// addServerFlag registers --server; BRIG_SERVER reaches it through the
// environment fallback of parseInterleaved, like every other flag.
func addServerFlag(fs *flag.FlagSet) *serverFlag {
	s := &serverFlag{url: defaultServer}
	fs.Func("server", "NATS server URL (env BRIG_SERVER, default "+defaultServer+")", func(v string) error {
		s.url, s.explicit = v, true
		return nil
	})
	return s
}

func newLogger(w io.Writer, level string) *slog.Logger {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(strings.ToUpper(level))); err != nil {
		lv = slog.LevelInfo
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: lv}))
}

// defaultDataDir is brig's folder under the user's data dir.
func defaultDataDir() string {
	if d := os.Getenv("XDG_DATA_HOME"); d != "" {
		return filepath.Join(d, "brig")
	}
	if home, err := os.UserHomeDir(); err == nil {
		return filepath.Join(home, ".local", "share", "brig")
	}
	return filepath.Join(os.TempDir(), "brig-data")
}

// envHelp tells how flags come from the environment, in the usage texts.
const envHelp = "Every flag --foo-bar of brig dev, dispatcher, worker, nats, status and bench may also come\n" +
	"from the environment as BRIG_FOO_BAR (used when the flag is not on the command line and the\n" +
	"variable is not empty); the commands that submit or follow jobs take only BRIG_SERVER,\n" +
	"BRIG_CREDS and BRIG_TLS_CA, brig creds only BRIG_AUTH_DIR, and brig tenant those four."

// envOnly lists, for the commands that take only some flags from the
// environment, which: a variable left in a shell must not silently set
// every job's id, limits or scopes, nor the role of a credential.
var envOnly = map[string]map[string]bool{
	"brig run":    connEnv,
	"brig watch":  connEnv,
	"brig cancel": connEnv,
	"brig deploy": connEnv,
	// brig version takes nothing from the environment: BRIG_JSON, meant
	// for status, must not change what it prints.
	"brig version": {},
	"brig creds":   {"auth-dir": true},
	// Quotas never come from a variable left in a shell.
	"brig tenant add":   tenantEnv,
	"brig tenant ls":    tenantEnv,
	"brig tenant rm":    tenantEnv,
	"brig tenant creds": tenantEnv,

	// Nor which tenant's functions brig functions lists or removes.
	"brig functions ls":   connEnv,
	"brig functions show": connEnv,
	"brig functions rm":   connEnv,
}

// tenantEnv are the flags of brig tenant taken from the environment.
var tenantEnv = map[string]bool{"server": true, "creds": true, "tls-ca": true, "auth-dir": true}

// connEnv are the flags of connFlags: where and how to connect.
var connEnv = map[string]bool{"server": true, "creds": true, "tls-ca": true}

// newFlagSet returns a flag set that reports errors instead of exiting.
// Its Usage, what -h and --help (and brig help) print, goes to stdout: it
// is what the user asked for. A parse error goes to stderr, with the
// command's synopsis (see parseInterleaved).
func newFlagSet(name string, stdout, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { printUsage(stdout, fs) }
	return fs
}

// printUsage writes a command's help: its synopsis and what it does
// (commandHelp), its flags, and how flags come from the environment.
func printUsage(w io.Writer, fs *flag.FlagSet) {
	h := helpOf(fs.Name())
	fmt.Fprintf(w, "Usage: %s\n", h.synopsis)
	if h.about != "" {
		fmt.Fprintf(w, "\n%s\n", strings.TrimRight(h.about, "\n"))
	}
	fmt.Fprintln(w, "\nFlags:")
	out := fs.Output()
	fs.SetOutput(w)
	fs.PrintDefaults()
	fs.SetOutput(out)
	fmt.Fprintf(w, "\n%s\n", envHelp)
}

// parseExit is the exit code of a command whose flags did not parse: 0
// when the user asked for help (-h, --help; parseInterleaved printed it),
// exitUsage for a usage error.
func parseExit(err error) int {
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	return exitUsage
}

// parseInterleaved parses flags that may come before or after the
// positional arguments (`brig run hello.py --json`), then fills the flags
// left unset from the environment (applyEnv), and returns the positionals.
// On -h or --help it prints the command's usage (fs.Usage, to stdout) and
// returns flag.ErrHelp; on a bad flag it prints the error, the synopsis and
// where to find more, to stderr. Either way the caller returns
// parseExit(err).
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	// The flag package calls Usage on every parse error as well as on -h;
	// only -h gets the full usage, and on stdout.
	help := fs.Usage
	fs.Usage = func() {}
	defer func() { fs.Usage = help }()
	restore := refuseRepeats(fs)
	defer restore()
	var pos []string
	for {
		err := fs.Parse(args)
		if errors.Is(err, flag.ErrHelp) {
			restore() // the usage shows the flags' own defaults
			help()
			return nil, err
		}
		if err != nil {
			fmt.Fprintf(fs.Output(), "usage: %s\nRun '%s -h' for its flags.\n", helpOf(fs.Name()).synopsis, fs.Name())
			return nil, err
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if err := applyEnv(fs, os.LookupEnv); err != nil {
		fmt.Fprintf(fs.Output(), "%s: %v\n", fs.Name(), err)
		return nil, err
	}
	return pos, nil
}

// envName is the environment variable that stands in for a flag:
// --foo-bar ← BRIG_FOO_BAR.
func envName(flagName string) string {
	return "BRIG_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// applyEnv sets each flag that the command line did not set from its
// environment variable, when that is set and not empty, as if it had been
// given (fs.Visit lists it afterwards): the command line wins over the
// environment, which wins over the default. A repeatable flag takes one
// value from the environment.
func applyEnv(fs *flag.FlagSet, lookup func(string) (string, bool)) error {
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		if only, ok := envOnly[fs.Name()]; given[f.Name] || (ok && !only[f.Name]) {
			return
		}
		env := envName(f.Name)
		v, ok := lookup(env)
		if !ok || v == "" {
			return
		}
		if err := fs.Set(f.Name, v); err != nil {
			errs = append(errs, fmt.Errorf("invalid value %q for %s (flag -%s): %w", v, env, f.Name, err))
		}
	})
	return errors.Join(errs...)
}

// subcommand is one of a command's subcommands (brig tenant add).
type subcommand func(ctx context.Context, args []string, stdout, stderr io.Writer) int

// runSubcommand runs the subcommand args[0] of the command name: with none
// or an unknown one it prints usage to stderr (exitUsage); -h, --help and
// help print it to stdout (0).
func runSubcommand(ctx context.Context, name, usage string, subs map[string]subcommand, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	sub, ok := subs[args[0]]
	if !ok {
		if args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
			fmt.Fprint(stdout, usage)
			return 0
		}
		fmt.Fprintf(stderr, "%s: unknown command %q\n%s", name, args[0], usage)
		return exitUsage
	}
	return sub(ctx, args[1:], stdout, stderr)
}

// repeatable marks a flag value that may be given more than once
// (--allow, --file, --env, --label, --pool-limit).
type repeatable interface{ repeatable() }

func (*multiFlag) repeatable()     {}
func (labelsFlag) repeatable()     {}
func (poolLimitsFlag) repeatable() {}

// onceValue refuses a second value for a flag that takes one: the flag
// package would keep the last without a word (brig run --id a --id b).
type onceValue struct {
	flag.Value
	set bool
}

func (o *onceValue) Set(v string) error {
	if o.set {
		return errors.New("given twice")
	}
	o.set = true
	return o.Value.Set(v)
}

// IsBoolFlag keeps --json and the like taking no value.
func (o *onceValue) IsBoolFlag() bool {
	b, ok := o.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

// refuseRepeats makes every flag of fs that is not repeatable refuse a
// second value while fs is parsed (the positional arguments between flags
// parse it again, and the count goes on), and returns what puts the flags'
// own values back.
func refuseRepeats(fs *flag.FlagSet) (restore func()) {
	orig := map[*flag.Flag]flag.Value{}
	fs.VisitAll(func(f *flag.Flag) {
		if _, ok := f.Value.(repeatable); ok {
			return
		}
		orig[f] = f.Value
		f.Value = &onceValue{Value: f.Value}
	})
	return func() {
		for f, v := range orig {
			f.Value = v
		}
	}
}
