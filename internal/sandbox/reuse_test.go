package sandbox

import (
	"testing"

	"github.com/brig-dev/brig/schema"
)

// TestReuseNeverCrossesTenants: an idle sandbox a job of one tenant left
// goes only to a later job of that tenant, never to another tenant's job
// of the same function and settings (a built-in's name is every tenant's).
func TestReuseNeverCrossesTenants(t *testing.T) {
	t.Parallel()
	c := &reuseCache{r: &Runner{cfg: Config{Slots: 4}}, ctx: t.Context(), stopC: make(chan struct{})}
	spec := schema.RunSpec{Function: "python", Image: "brig/python:latest", Runtime: schema.RuntimeRunc,
		Limits: schema.Limits{MemoryMB: 256, CPUs: 1, Pids: 128}, TimeoutMS: 30_000}
	left := &Sandbox{id: "c1", reuse: true, tenant: "acme"}
	c.put(t.Context(), spec, left)
	if sb := c.take("default", spec); sb != nil {
		t.Fatalf("tenant default got tenant acme's sandbox %s", sb.id)
	}
	if sb := c.take("acme", spec); sb != left {
		t.Fatalf("tenant acme got %v; want its own idle sandbox back", sb)
	}
	if c.size() != 0 {
		t.Errorf("%d idle after the take; want 0", c.size())
	}
}
