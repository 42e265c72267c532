package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/brig-dev/brig/internal/auth"
	"github.com/brig-dev/brig/internal/bus"
	"github.com/brig-dev/brig/internal/registry"
	"github.com/brig-dev/brig/schema"
	"github.com/brig-dev/brig/sdk"
)

// statusFailureWindow is how far back `brig status` looks for failures.
const (
	statusFailureWindow = 15 * time.Minute
	statusFailuresShown = 10
	statusEventsScanned = 50_000
)

// status is what `brig status` shows (and prints with --json).
type status struct {
	Server   string            `json:"server"`
	Cluster  string            `json:"cluster,omitempty"`
	Streams  []streamStatus    `json:"streams"`
	Pools    []poolStatus      `json:"pools"`
	Workers  []registry.Worker `json:"workers"`
	Running  []runningJob      `json:"running"`
	Failures []failure         `json:"recent_failures"`
	Pending  uint64            `json:"submissions_pending"`
	Tenants  []tenantStatus    `json:"tenants"`
}

// tenantStatus is a tenant's row of an admin's status: its record's quotas
// (0: no limit), its jobs accepted and not yet ended (the markers of
// max_queued in BRIG_ACTIVE_<tenant>, docs/design.md §10.3), those routed
// and not yet ended (max_running's in BRIG_RUNNING_<tenant>, kept only
// for a tenant with max_running) and how many credentials it has recorded.
type tenantStatus struct {
	Name         string `json:"name"`
	MaxRunning   int    `json:"max_running"`
	MaxQueued    int    `json:"max_queued"`
	MaxStorageMB int    `json:"max_storage_mb"`
	Queued       uint64 `json:"queued"`
	Running      uint64 `json:"running"`
	Credentials  int    `json:"credentials"`
}

// tenantView is what `brig status` shows a tenant's credential: its own
// tenant's status, from the dispatchers' status service.
type tenantView struct {
	Server string `json:"server"`
	*sdk.TenantStatus
}

type streamStatus struct {
	Name     string `json:"name"`
	Msgs     uint64 `json:"msgs"`
	Replicas int    `json:"replicas"`
	Current  int    `json:"current"`
	Leader   string `json:"leader,omitempty"`
}

type poolStatus struct {
	Name    string `json:"name"`
	Workers int    `json:"workers"`
	Slots   int    `json:"slots"`
	Free    int    `json:"free"`
	Queued  uint64 `json:"queued"`
	Running int    `json:"running"`
	Limit   int    `json:"limit,omitempty"`
}

type runningJob struct {
	JobID  string `json:"job_id"`
	Worker string `json:"worker"`
}

type failure struct {
	Time   time.Time     `json:"time"`
	JobID  string        `json:"job_id"`
	Status schema.Status `json:"status"`
	Error  string        `json:"error"`
}

func cmdStatus(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) int {
	fs := newFlagSet("brig status", stdout, stderr)
	conn := addConnFlags(fs, devAdminCreds)
	asJSON := fs.Bool("json", false, "print the status as one JSON object")
	if _, err := parseInterleaved(fs, args); err != nil {
		return parseExit(err)
	}
	// A tenant's credential has no JetStream API: it asks the dispatchers
	// for its own tenant's status (docs/design.md §10.3).
	tenant, err := credsTenant(conn.credsFile())
	if err != nil {
		fmt.Fprintf(stderr, "brig status: %v\n", err)
		return exitBrig
	}
	if tenant != "" {
		return showTenantStatus(ctx, conn, tenant, *asJSON, stdout, stderr)
	}
	nc, ctx, err := conn.dial(ctx, "brig-status", nats.Timeout(3*time.Second))
	if err != nil {
		fmt.Fprintf(stderr, "brig status: %v\n", err)
		return exitBrig
	}
	defer nc.Close()
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := requireBrigServer(nc); err != nil {
		fmt.Fprintf(stderr, "brig status: %v\n", err)
		return exitBrig
	}
	st, err := readStatus(rctx, nc)
	if err != nil {
		fmt.Fprintf(stderr, "brig status: %v\n", refusal(ctx, err))
		return exitBrig
	}
	if *asJSON {
		printJSON(stdout, st)
		return 0
	}
	printStatus(stdout, st)
	return 0
}

func printJSON(w io.Writer, v any) {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// credsTenant is the tenant of a credentials file (its JWT's brig-tenant
// tag), "" for an admin's, a role's, or no file.
func credsTenant(creds string) (string, error) {
	if creds == "" {
		return "", nil
	}
	if err := readable(creds); err != nil {
		return "", fmt.Errorf("credentials: %w", err)
	}
	return sdk.CredsTenant(creds)
}

// statusWait bounds a tenant's status request: the dispatcher that takes
// it answers after a few lookups (dispatcher.MaxStatusRequests in hand,
// each within 5 s).
const statusWait = 10 * time.Second

// showTenantStatus prints the status of the credential's tenant, which a
// dispatcher answers.
func showTenantStatus(ctx context.Context, conn *connFlags, tenant string, asJSON bool, stdout, stderr io.Writer) int {
	nc, ctx, err := conn.dial(ctx, "brig-status", nats.Timeout(3*time.Second), nats.CustomInboxPrefix(schema.InboxPrefix(tenant)))
	if err != nil {
		fmt.Fprintf(stderr, "brig status: %v\n", err)
		return exitBrig
	}
	defer nc.Close()
	cl, err := sdk.New(nc, sdk.WithTenant(tenant))
	if err != nil {
		fmt.Fprintf(stderr, "brig status: %v\n", err)
		return exitBrig
	}
	defer cl.Close()
	rctx, cancel := context.WithTimeout(ctx, statusWait)
	defer cancel()
	ts, err := cl.Status(rctx)
	switch {
	case errors.Is(err, nats.ErrNoResponders):
		err = noDispatcher(nc)
	case errors.Is(err, context.DeadlineExceeded):
		err = fmt.Errorf("no dispatcher answered within %s", statusWait)
	}
	if err != nil {
		err = refusal(ctx, err)
		if errors.Is(err, nats.ErrPermissionViolation) {
			// A credential minted before tenants could ask for their status.
			err = fmt.Errorf("the server refused %s a status request (%w): mint a new one with `brig tenant creds %s`, or use an admin's",
				credsName(conn.credsFile()), nats.ErrPermissionViolation, tenant)
		}
		fmt.Fprintf(stderr, "brig status: %v\n", err)
		return exitBrig
	}
	view := tenantView{Server: nc.ConnectedUrlRedacted(), TenantStatus: ts}
	if asJSON {
		printJSON(stdout, view)
		return 0
	}
	tw := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
	defer tw.Flush()
	fmt.Fprintf(tw, "server %s; tenant %s\n\n", view.Server, ts.Tenant)
	fmt.Fprintln(tw, "TENANT\tMAX RUNNING\tMAX QUEUED\tMAX STORAGE MB\tQUEUED\tRUNNING")
	fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\n", ts.Tenant, quotaText(ts.MaxRunning), quotaText(ts.MaxQueued), quotaText(ts.MaxStorageMB), ts.Queued, ts.Running)
	return 0
}

// readTenants lists the tenants' records and counts each one's jobs
// queued and running: one listing each of the BRIG_ACTIVE_ and
// BRIG_RUNNING_ streams, not lookups per tenant.
func readTenants(ctx context.Context, js jetstream.JetStream) ([]tenantStatus, error) {
	out := []tenantStatus{}
	tenants, err := auth.ExistingTenants(ctx, js)
	if errors.Is(err, auth.ErrNoTenant) {
		return out, nil // no tenant was ever added
	}
	if err != nil {
		return nil, err
	}
	recs, err := tenants.List(ctx)
	if err != nil {
		return nil, err
	}
	queued, err := markers(ctx, js, schema.ActivePrefix, schema.ActiveStream(""))
	if err != nil {
		return nil, err
	}
	running, err := markers(ctx, js, bus.RunningPrefix, bus.RunningStream(""))
	if err != nil {
		return nil, err
	}
	for _, r := range recs {
		out = append(out, tenantStatus{Name: r.Name, MaxRunning: r.MaxRunning, MaxQueued: r.MaxQueued,
			MaxStorageMB: r.MaxStorageMB, Queued: queued[r.Name], Running: running[r.Name], Credentials: len(r.Users)})
	}
	return out, nil
}

// markers counts the messages of the per-tenant streams named
// streamPrefix<tenant> on subjects under subjectPrefix, by tenant.
func markers(ctx context.Context, js jetstream.JetStream, subjectPrefix, streamPrefix string) (map[string]uint64, error) {
	counts := map[string]uint64{}
	streams := js.ListStreams(ctx, jetstream.WithStreamListSubject(subjectPrefix+">"))
	for info := range streams.Info() {
		if tenant, ok := strings.CutPrefix(info.Config.Name, streamPrefix); ok {
			counts[tenant] = info.State.Msgs
		}
	}
	if err := streams.Err(); err != nil {
		return nil, fmt.Errorf("list the streams %s*: %w", streamPrefix, err)
	}
	return counts, nil
}

// quotaText is a quota as the tables show it: "-" for no limit.
func quotaText(v int) string {
	if v == 0 {
		return "-"
	}
	return fmt.Sprint(v)
}

// readStatus gathers the fleet's state from JetStream: streams, the pool
// consumers, the worker registry and recent terminal events.
func readStatus(ctx context.Context, nc *nats.Conn) (*status, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	st := &status{Server: nc.ConnectedUrlRedacted(), Cluster: nc.ConnectedClusterName()}
	for _, name := range []string{schema.StreamSubmit, schema.StreamWork, schema.StreamEvents} {
		s, err := js.Stream(ctx, name)
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("stream %s: %w", name, err)
		}
		info := s.CachedInfo()
		ss := streamStatus{Name: name, Msgs: info.State.Msgs, Replicas: max(info.Config.Replicas, 1), Current: 1}
		if c := info.Cluster; c != nil {
			ss.Leader = c.Leader
			for _, p := range c.Replicas {
				if p.Current {
					ss.Current++
				}
			}
		}
		st.Streams = append(st.Streams, ss)
	}
	reg, err := registry.Open(ctx, js, 0)
	if err != nil {
		return nil, err
	}
	if st.Workers, err = reg.List(ctx); err != nil {
		return nil, err
	}
	if st.Workers == nil {
		st.Workers = []registry.Worker{}
	}
	pools := map[string]*poolStatus{}
	pool := func(name string) *poolStatus {
		if pools[name] == nil {
			pools[name] = &poolStatus{Name: name}
		}
		return pools[name]
	}
	for _, w := range st.Workers {
		for _, p := range w.Pools {
			ps := pool(p)
			ps.Workers++
			ps.Slots += w.Slots
			ps.Free += w.Free
		}
		for _, id := range w.Running {
			st.Running = append(st.Running, runningJob{JobID: id, Worker: w.ID})
		}
	}
	if work, err := js.Stream(ctx, schema.StreamWork); err == nil {
		for info := range work.ListConsumers(ctx).Info() {
			name, ok := strings.CutPrefix(info.Name, bus.WorkConsumer(""))
			if !ok {
				continue
			}
			ps := pool(name)
			ps.Queued, ps.Running, ps.Limit = info.NumPending, info.NumAckPending, max(info.Config.MaxAckPending, 0)
		}
	}
	if c, err := js.Consumer(ctx, schema.StreamSubmit, bus.DispatcherConsumer); err == nil {
		if info, err := c.Info(ctx); err == nil {
			st.Pending = info.NumPending + uint64(info.NumAckPending)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(pools)) {
		st.Pools = append(st.Pools, *pools[name])
	}
	if st.Failures, err = recentFailures(ctx, js); err != nil {
		return nil, err
	}
	if st.Tenants, err = readTenants(ctx, js); err != nil {
		return nil, err
	}
	return st, nil
}

// recentFailures reads the terminal events of the last window and keeps
// the newest that did not succeed.
func recentFailures(ctx context.Context, js jetstream.JetStream) ([]failure, error) {
	cons, err := js.OrderedConsumer(ctx, schema.StreamEvents, jetstream.OrderedConsumerConfig{
		// Subjects are brig.events.<tenant>.<id>.<type>: a job's key has
		// two tokens.
		FilterSubjects: []string{
			schema.EventsPrefix + "*.*." + string(schema.EventResult), schema.EventsPrefix + "*.*." + string(schema.EventTimeout),
			schema.EventsPrefix + "*.*." + string(schema.EventError),
		},
		DeliverPolicy: jetstream.DeliverByStartTimePolicy,
		OptStartTime:  schema.Ptr(time.Now().Add(-statusFailureWindow)),
	})
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return []failure{}, nil // no dispatcher has run yet
	}
	if err != nil {
		return nil, fmt.Errorf("read recent events: %w", err)
	}
	var out []failure
	for range statusEventsScanned {
		msg, err := cons.Next(jetstream.FetchMaxWait(300 * time.Millisecond))
		if err != nil {
			break // none left in the window
		}
		var ev schema.Event
		if json.Unmarshal(msg.Data(), &ev) != nil || ev.Status == schema.StatusSucceeded {
			continue
		}
		f := failure{Time: ev.Time, JobID: ev.JobID, Status: ev.Status}
		if ev.Error != nil {
			f.Error = string(ev.Error.Type) + ": " + ev.Error.Message
		}
		out = append(out, f)
		if len(out) > statusFailuresShown {
			out = out[1:]
		}
	}
	slices.Reverse(out)
	if out == nil {
		out = []failure{}
	}
	return out, nil
}

func printStatus(w io.Writer, st *status) {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	defer tw.Flush()
	fmt.Fprintf(tw, "server %s", st.Server)
	if st.Cluster != "" {
		fmt.Fprintf(tw, " (cluster %s)", st.Cluster)
	}
	fmt.Fprintf(tw, "; submissions waiting for a dispatcher: %d\n\n", st.Pending)
	fmt.Fprintln(tw, "STREAM\tMSGS\tREPLICAS\tCURRENT\tLEADER")
	for _, s := range st.Streams {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%s\n", s.Name, s.Msgs, s.Replicas, s.Current, dash(s.Leader))
	}
	fmt.Fprintln(tw, "\nPOOL\tWORKERS\tSLOTS\tFREE\tQUEUED\tRUNNING\tLIMIT")
	for _, p := range st.Pools {
		limit := "-"
		if p.Limit > 0 {
			limit = fmt.Sprint(p.Limit)
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%s\n", p.Name, p.Workers, p.Slots, p.Free, p.Queued, p.Running, limit)
	}
	fmt.Fprintln(tw, "\nTENANT\tMAX RUNNING\tMAX QUEUED\tMAX STORAGE MB\tQUEUED\tRUNNING\tCREDENTIALS")
	for _, t := range st.Tenants {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%d\n", t.Name, quotaText(t.MaxRunning), quotaText(t.MaxQueued), quotaText(t.MaxStorageMB),
			t.Queued, t.Running, t.Credentials)
	}
	fmt.Fprintln(tw, "\nWORKER\tPOOLS\tSLOTS\tFREE\tRUNNING\tPREWARMED\tREUSABLE\tLABELS\tSEEN")
	for _, wk := range st.Workers {
		var labels []string
		for _, k := range slices.Sorted(maps.Keys(wk.Labels)) {
			labels = append(labels, k+"="+wk.Labels[k])
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%d\t%s\t%s ago\n", wk.ID, strings.Join(wk.Pools, ","), wk.Slots, wk.Free,
			len(wk.Running), wk.Prewarmed, wk.Reusable, dash(strings.Join(labels, ",")), time.Since(wk.Seen).Round(100*time.Millisecond))
	}
	fmt.Fprintln(tw, "\nRUNNING JOB\tWORKER")
	for _, r := range st.Running {
		fmt.Fprintf(tw, "%s\t%s\n", r.JobID, r.Worker)
	}
	fmt.Fprintf(tw, "\nRECENT FAILURE (%s)\tJOB\tSTATUS\tERROR\n", statusFailureWindow)
	for _, f := range st.Failures {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", f.Time.Local().Format(time.TimeOnly), f.JobID, f.Status, clipLine(f.Error, 100))
	}
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func clipLine(s string, n int) string {
	s = strings.ReplaceAll(s, "\n", " ")
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
