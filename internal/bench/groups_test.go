package bench

import (
	"slices"
	"strings"
	"testing"
)

func TestParseOnly(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		want []string
	}{
		{"", nil},
		{"  ", nil},
		{"queue", []string{GroupQueue}},
		// Run order, each once, whatever the order and repeats given.
		{"messages,burst,cold,burst", []string{GroupCold, GroupBurst, GroupMessages}},
		{" warm , throughput", []string{GroupWarm, GroupThroughput}},
		{strings.Join(Groups(), ","), Groups()},
	} {
		got, err := ParseOnly(tc.in)
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("ParseOnly(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"nope", "cold,", "cold,Warm", strings.Repeat("cold,", MaxOnlyLen)} {
		_, err := ParseOnly(bad)
		if err == nil {
			t.Errorf("ParseOnly(%q) accepted it", bad)
			continue
		}
		if len(bad) <= MaxOnlyLen && !strings.Contains(err.Error(), "valid: cold,warm,burst,queue,throughput,messages") {
			t.Errorf("ParseOnly(%q) = %v; want the valid names listed", bad, err)
		}
	}
}

func TestSelection(t *testing.T) {
	t.Parallel()
	for _, g := range Groups() {
		if !selected(nil, g) {
			t.Errorf("no --only: group %s not selected", g)
		}
	}
	only := []string{GroupBurst, GroupQueue}
	for _, g := range Groups() {
		if want := g == GroupBurst || g == GroupQueue; selected(only, g) != want {
			t.Errorf("selected(%q, %s) = %v, want %v", only, g, !want, want)
		}
	}
	for _, tc := range []struct {
		only []string
		want bool
	}{
		{nil, true},
		{[]string{GroupQueue}, false},
		{[]string{GroupMessages, GroupQueue}, false},
		{[]string{GroupQueue, GroupBurst}, true},
		{[]string{GroupCold}, true},
		{[]string{GroupWarm}, true},
		{[]string{GroupThroughput}, true},
	} {
		if got := needsDocker(tc.only); got != tc.want {
			t.Errorf("needsDocker(%q) = %v, want %v", tc.only, got, tc.want)
		}
	}
}

func TestQuickConfig(t *testing.T) {
	t.Parallel()
	full, quick := Config{}.withDefaults(), Config{Quick: true}.withDefaults()
	if full.N != 20 || quick.N != quickN {
		t.Errorf("default N = %d, quick %d; want 20 and %d", full.N, quick.N, quickN)
	}
	if n := (Config{Quick: true, N: 7}).withDefaults().N; n != 7 {
		t.Errorf("quick with N 7: N = %d", n)
	}
	if !slices.Equal(full.concurrencies(), []int{1, 4, 8}) || !slices.Equal(quick.concurrencies(), []int{8}) {
		t.Errorf("concurrencies: full %v, quick %v", full.concurrencies(), quick.concurrencies())
	}
}

func TestMarkQuick(t *testing.T) {
	t.Parallel()
	figs := []Figure{{Name: "a", Note: "no container"}, {Name: "b"}}
	r := &runner{cfg: Config{Quick: true}, figs: slices.Clone(figs)}
	r.markQuick()
	if r.figs[0].Note != "quick run; no container" || r.figs[1].Note != "quick run" {
		t.Errorf("quick notes: %q, %q", r.figs[0].Note, r.figs[1].Note)
	}
	r = &runner{cfg: Config{}, figs: slices.Clone(figs)}
	r.markQuick()
	if !slices.EqualFunc(r.figs, figs, func(a, b Figure) bool { return a.Note == b.Note }) {
		t.Errorf("a full run's notes changed: %+v", r.figs)
	}
}
