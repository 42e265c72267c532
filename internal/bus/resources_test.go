package bus_test

import (
	"strings"
	"testing"

	"github.com/brig-dev/brig/internal/bus"
	"github.com/brig-dev/brig/schema"
)

// TestResourceNamesDoNotCollide: one JetStream name comes from one
// (tenant, name) pair only (the argument is at bus.DictBucket). The name rules
// it rests on: no tenant character is "_" or ".", no resource name
// character is ".". Each name parses back to its pair, and names that
// could be confused with a separator in them stay apart.
func TestResourceNamesDoNotCollide(t *testing.T) {
	t.Parallel()
	for b := range 256 {
		c := string(rune(b))
		if schema.ValidTenant("a"+c) && !strings.Contains("abcdefghijklmnopqrstuvwxyz0123456789-", c) {
			t.Fatalf("a tenant name may hold %q: bucket names could collide", c)
		}
		if schema.ValidName("a"+c) && c == "." {
			t.Fatal(`a resource name may hold ".": queue subjects could collide`)
		}
	}
	tenants := []string{"a", "a-b", "ab", "b", "b-c", "default", "a1", strings.Repeat("z", schema.MaxTenantLen)}
	names := []string{"a", "b", "c", "b_c", "c_d", "b_c_d", "a_b", "a-b", "b-c", "_", "a__", "shared", "X_Y",
		strings.Repeat("n", 64), "default_x"}
	type pair struct{ tenant, name string }
	seen := map[string]pair{}
	add := func(kind, s string, p pair) {
		t.Helper()
		if q, dup := seen[s]; dup {
			t.Fatalf("%s %q comes from both %+v and %+v", kind, s, q, p)
		}
		seen[s] = p
	}
	for _, tenant := range tenants {
		if !schema.ValidTenant(tenant) {
			t.Fatalf("tenant %q is not valid", tenant)
		}
		for _, name := range names {
			if !schema.ValidName(name) {
				continue // "_" and "a__"... the job could not name it
			}
			p := pair{tenant, name}
			d, q, subj := bus.DictBucket(tenant, name), bus.QueueStream(tenant, name), bus.QueueSubject(tenant, name)
			add("dict stream", "KV_"+d, p)
			add("queue stream", q, p)
			add("queue subject", subj, p)
			for _, got := range []struct{ s, prefix, sep string }{
				{d, bus.DictBucketPrefix, "_"}, {q, bus.QueueStreamPrefix, "_"}, {subj, bus.QueueSubjectPrefix, "."},
			} {
				gt, gn, ok := strings.Cut(strings.TrimPrefix(got.s, got.prefix), got.sep)
				if !ok || gt != tenant || gn != name {
					t.Fatalf("%q parses back to (%q, %q), want (%q, %q)", got.s, gt, gn, tenant, name)
				}
			}
		}
	}
	// The one pair that would collide with tenant a's dict b_c (BRIG_DICT_a_b_c)
	// is tenant a_b's dict c, and a_b is no tenant.
	if schema.ValidTenant("a_b") {
		t.Fatal(`"a_b" is a tenant: its dict c would be tenant a's dict b_c`)
	}
}
