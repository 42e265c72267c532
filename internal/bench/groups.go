package bench

import (
	"fmt"
	"slices"
	"strings"
)

// The figure groups a run may be limited to (Config.Only; `brig bench
// --only`), in the order they run. Each group measures its own floors, so
// every brig figure is printed beside its floor whatever the selection.
const (
	// GroupCold: the raw Engine API cold start, then brig's cold path.
	GroupCold = "cold"
	// GroupWarm: the raw prewarmed container, then brig's single-use path
	// on `brig dev`'s prewarmed containers.
	GroupWarm = "warm"
	// GroupBurst: 8 jobs at once onto an idle worker of the bench's own
	// with 8 slots and a full warm cache, against that worker's one job at
	// a time.
	GroupBurst = "burst"
	// GroupQueue: raw JetStream, then brig's echo (no container), latency
	// and throughput.
	GroupQueue = "queue"
	// GroupThroughput: raw container churn, then brig single-use, at each
	// concurrency; then reuse mode against single-use.
	GroupThroughput = "throughput"
	// GroupMessages: the bus messages one echo and one python job cost.
	GroupMessages = "messages"
)

// Groups returns the valid group names, in the order they run.
func Groups() []string {
	return []string{GroupCold, GroupWarm, GroupBurst, GroupQueue, GroupThroughput, GroupMessages}
}

// MaxOnlyLen bounds the --only list (its text, in bytes).
const MaxOnlyLen = 256

// ParseOnly reads a comma-separated list of group names ("" means every
// group) and returns them in run order, each once. An unknown name is an
// error that lists the valid ones.
func ParseOnly(s string) ([]string, error) {
	if len(s) > MaxOnlyLen {
		return nil, fmt.Errorf("--only is %d bytes; at most %d", len(s), MaxOnlyLen)
	}
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	groups := Groups()
	want := map[string]bool{}
	for _, name := range strings.Split(s, ",") {
		name = strings.TrimSpace(name)
		if !slices.Contains(groups, name) {
			return nil, fmt.Errorf("unknown figure group %q; valid: %s", name, strings.Join(groups, ","))
		}
		want[name] = true
	}
	var out []string
	for _, g := range groups {
		if want[g] {
			out = append(out, g)
		}
	}
	return out, nil
}

// selected reports whether group runs under only (empty: every group).
func selected(only []string, group string) bool {
	return len(only) == 0 || slices.Contains(only, group)
}

// needsDocker reports whether any group in only (empty: every group)
// talks to the Docker daemon itself: all but queue and messages, whose
// containers, if any, are `brig dev`'s.
func needsDocker(only []string) bool {
	for _, g := range []string{GroupCold, GroupWarm, GroupBurst, GroupThroughput} {
		if selected(only, g) {
			return true
		}
	}
	return false
}
