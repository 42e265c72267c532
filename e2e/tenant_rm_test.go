package e2e

import (
	"context"
	"strings"
	"testing"

	"github.com/brig-dev/brig/schema"
)

// TestTenantRmStopsItsJobs: `brig tenant rm` revokes the tenant's
// credentials and cancels its running job; the job ends cancelled, not
// run to its end (docs/design.md §10.3).
func TestTenantRmStopsItsJobs(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), jobBudget)
	defer cancel()
	u := newTenant(ctx, t, schema.Tenant{Name: "rm-" + randomHex(3)})
	job := pythonJob("rm-long", "import time\ntime.sleep(60)\nprint('ran to its end')")
	h, err := u.c.Submit(ctx, job)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Stop()
	waitStarted(t, h)
	r := brigCLI(t, "tenant", "rm", u.name, "--server", stack.URL(), "--creds", stack.AdminCreds, "--auth-dir", stack.Auth.Dir())
	wantExit(t, r, 0)
	if !strings.Contains(r.stdout, "cancelled 1 jobs") {
		t.Errorf("brig tenant rm printed %q, want it to cancel the running job", r.stdout)
	}
	// The tenant's own connection was revoked: read the outcome as admin.
	eventually(t, jobBudget, func(ctx context.Context) (bool, string) {
		s := storedOf(ctx, t, u.key(job.ID))
		if s.terminal == nil {
			return false, "no terminal event yet"
		}
		if s.terminal.Status != schema.StatusCancelled {
			t.Fatalf("job of the removed tenant ended %s", brief(s.terminal))
		}
		return true, ""
	})
}
