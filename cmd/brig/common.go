package main

import (
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
	"brig creds":  {"auth-dir": true},
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
func newFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage of %s:\n", name)
		fs.PrintDefaults()
		fmt.Fprintf(fs.Output(), "\n%s\n", envHelp)
	}
	return fs
}

// parseInterleaved parses flags that may come before or after the
// positional arguments (`brig run hello.py --json`), then fills the flags
// left unset from the environment (applyEnv), and returns the positionals.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
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
