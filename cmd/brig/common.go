package main

import (
	"flag"
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

func addServerFlag(fs *flag.FlagSet) *serverFlag {
	s := &serverFlag{url: defaultServer}
	if env := os.Getenv("BRIG_SERVER"); env != "" {
		s.url, s.explicit = env, true
	}
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

// newFlagSet returns a flag set that reports errors instead of exiting.
func newFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

// parseInterleaved parses flags that may come before or after the
// positional arguments (`brig run hello.py --json`) and returns the
// positionals.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}
