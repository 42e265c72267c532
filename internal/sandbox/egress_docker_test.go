package sandbox_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/brig-dev/brig/internal/egress/allow"
	"github.com/brig-dev/brig/internal/egress/proxy"
	"github.com/brig-dev/brig/internal/sandbox"
	"github.com/brig-dev/brig/schema"
)

// mapResolver answers names from a map, never from the network.
type mapResolver map[string][]netip.Addr

func (m mapResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	if as, ok := m[host]; ok {
		return as, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}

// newEgressRig is a rig whose sandboxes' egress sockets are served by a
// filtering proxy resolving with r, for which 127.0.0.1 (where the tests'
// servers listen) counts as public; other loopback addresses are then
// this host's own.
func newEgressRig(t *testing.T, r proxy.Resolver) *rig {
	t.Helper()
	return newEgressRigBlocking(t, r, nil)
}

// newEgressRigBlocking is newEgressRig whose proxy also never reaches
// blocked, as a worker's never reaches its NATS servers.
func newEgressRigBlocking(t *testing.T, r proxy.Resolver, blocked []netip.Addr) *rig {
	t.Helper()
	lo := netip.MustParseAddr("127.0.0.1")
	cfg := proxy.Config{
		Resolver: r,
		Policy:   allow.Policy{TestPublic: []netip.Prefix{netip.PrefixFrom(lo, 32)}},
	}
	if blocked != nil {
		cfg.Blocked = func() []netip.Addr { return blocked }
	}
	px, err := proxy.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return newRig(t, func(c *sandbox.Config) {
		c.ListenEgress = func(ctx context.Context, path string) (sandbox.EgressListener, error) {
			return px.Listen(ctx, path)
		}
	})
}

// serveLoopback serves h on 127.0.0.1 until the test ends; it returns the
// port.
func serveLoopback(t *testing.T, h http.Handler) int {
	t.Helper()
	srv := &http.Server{Handler: h}
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().(*net.TCPAddr).Port
}

// egressProbe fetches, in order, every URL in args (a name resolved by
// the sandbox's DNS) and reports the status or the error of each, and
// what getaddrinfo said of names.
const egressProbe = `
import json, socket, sys, urllib.request
out = {}
for url in json.loads(sys.argv[1] if len(sys.argv) > 1 else '[]') or ARGS:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            out[url] = "%d %s" % (r.status, r.read().decode())
    except Exception as e:
        out[url] = "error: %s" % e
for name in NAMES:
    try:
        out["dns " + name] = sorted({a[4][0] for a in socket.getaddrinfo(name, 80, type=socket.SOCK_STREAM)})
    except Exception as e:
        out["dns " + name] = "error: %s" % e
print(json.dumps(out))
`

// TestEgressThroughProxy runs a job with an egress list in a real
// sandbox against a filtering proxy whose resolver maps ok.test to an
// HTTP server on the host's loopback (counted as public for the test):
// the allowed name answers, an unlisted one does not resolve and is
// reported, and the server sees only the allowed request.
func TestEgressThroughProxy(t *testing.T) {
	var mu sync.Mutex
	var hosts []string
	port := serveLoopback(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		hosts = append(hosts, r.Host)
		mu.Unlock()
		fmt.Fprint(w, "hello from "+r.Host)
	}))
	srvHosts := func() []string { // since the last call
		mu.Lock()
		defer mu.Unlock()
		h := hosts
		hosts = nil
		return h
	}
	lo := netip.MustParseAddr("127.0.0.1")

	rg := newEgressRig(t, mapResolver{"ok.test": {lo}, "other.test": {lo}})
	okURL := fmt.Sprintf("http://ok.test:%d/", port)
	otherURL := fmt.Sprintf("http://other.test:%d/", port)
	code := strings.NewReplacer("ARGS", fmt.Sprintf("[%q, %q]", okURL, otherURL), "NAMES", `["ok.test", "other.test"]`).Replace(egressProbe)
	for _, rt := range []string{schema.RuntimeRunc, schema.RuntimeRunsc} {
		t.Run(rt, func(t *testing.T) { egressJob(t, rg, rt, code, port, okURL, otherURL, srvHosts) })
	}
}

// egressJob runs the probe under runtime rt and checks what it got.
func egressJob(t *testing.T, rg *rig, rt, code string, port int, okURL, otherURL string, srvHosts func() []string) {
	work := rg.work("egress-"+rt, code)
	work.Spec.Runtime = rt
	work.Spec.Egress = []string{fmt.Sprintf("ok.test:%d", port)}
	res := rg.run(t.Context(), work)
	var f *sandbox.Failure
	if rt == schema.RuntimeRunsc && errors.As(res.err, &f) && f.ErrType == schema.ErrInvalidJob {
		t.Skipf("runsc not available: %v", res.err)
	}
	if res.err != nil {
		t.Fatalf("run: %v (stderr %s)", res.err, res.stderr.String())
	}
	var got map[string]any
	if err := json.Unmarshal([]byte(res.stdout.String()), &got); err != nil {
		t.Fatalf("output %q: %v; stderr %s", res.stdout.String(), err, res.stderr.String())
	}
	if s, _ := got[okURL].(string); !strings.HasPrefix(s, "200 hello from ok.test") {
		t.Errorf("allowed name: %v", got[okURL])
	}
	if s, _ := got[otherURL].(string); !strings.HasPrefix(s, "error") {
		t.Errorf("unlisted name answered: %v", got[otherURL])
	}
	if s, _ := got["dns other.test"].(string); !strings.HasPrefix(s, "error") {
		t.Errorf("unlisted name resolved: %v", got["dns other.test"])
	}
	if hosts := srvHosts(); len(hosts) != 1 || !strings.HasPrefix(hosts[0], "ok.test") {
		t.Errorf("the server saw hosts %q, want one request for ok.test", hosts)
	}
	found := false
	for _, d := range res.denials() {
		found = found || d.Host == "other.test" && d.Reason == schema.EgressNotAllowed
	}
	if !found {
		t.Errorf("no not_allowed refusal of other.test among %+v", res.denials())
	}
}

// TestEgressReadmeExample runs the README's refusal example: a lookup of
// an unlisted name, then a fronted plain-HTTP request (an allowed name's
// address, another Host). The job sees a failed lookup and a 403; the
// proxy reports the lookup (A and AAAA, each asked twice) and the
// mismatch, and the server is never reached.
func TestEgressReadmeExample(t *testing.T) {
	var hits sync.Mutex
	hit := 0
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Lock()
		hit++
		hits.Unlock()
	})}
	ln, err := net.Listen("tcp4", "127.0.0.1:80")
	if err != nil {
		t.Skipf("port 80 is taken: %v", err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	lo := netip.MustParseAddr("127.0.0.1")
	rg := newEgressRig(t, mapResolver{"api.github.com": {lo}})
	work := rg.work("egress-readme", `
import sys, urllib.request, urllib.error
try:
    urllib.request.urlopen("https://evil.example/", timeout=5)
except Exception as e:
    print("evil:", e)
try:
    urllib.request.urlopen(urllib.request.Request("http://api.github.com/", headers={"Host": "evil.example"}), timeout=5)
except urllib.error.HTTPError as e:
    print("fronted:", e.code, e.read().decode().strip())
sys.exit(1)
`)
	work.Spec.Egress = []string{"api.github.com", "*.pypi.org", "hooks.example.com:8443"}
	res := rg.run(t.Context(), work)
	if res.err != nil {
		t.Fatalf("run: %v", res.err)
	}
	out := res.stdout.String()
	if !strings.Contains(out, "evil: <urlopen error") || !strings.Contains(out, `fronted: 403 brig egress refused api.github.com:80 (mismatch)`) {
		t.Errorf("the job saw %q", out)
	}
	denials := res.denials()
	t.Logf("refusals: %+v", denials)
	want := []string{"evil.example 53 not_allowed", "api.github.com 80 mismatch"}
	var got []string
	for _, d := range denials {
		g := fmt.Sprintf("%s %d %s", d.Host, d.Port, d.Reason)
		if len(got) == 0 || got[len(got)-1] != g {
			got = append(got, g)
		}
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("refusals %q, want %q (repeats folded)", got, want)
	}
	if len(denials) != 5 {
		t.Errorf("%d refusals, want 5 (the lookup's A and AAAA, each asked twice, and the mismatch) as the README says", len(denials))
	}
	hits.Lock()
	defer hits.Unlock()
	if hit != 0 {
		t.Errorf("the server was reached %d times", hit)
	}
}

// TestEgressBlockedBeatsPublic runs a job whose listed name resolves to an
// address the proxy counts as public (TestPublic) but is told never to
// reach (Blocked, as a worker passes its NATS servers' addresses): the
// job's request is refused not_public and the server there is never hit.
func TestEgressBlockedBeatsPublic(t *testing.T) {
	var hits atomic.Int32
	port := serveLoopback(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	lo := netip.MustParseAddr("127.0.0.1")
	rg := newEgressRigBlocking(t, mapResolver{"nats.test": {lo}}, []netip.Addr{lo})
	url := fmt.Sprintf("http://nats.test:%d/", port)
	work := rg.work("egress-blocked", strings.NewReplacer("ARGS", fmt.Sprintf("[%q]", url), "NAMES", "[]").Replace(egressProbe))
	work.Spec.Egress = []string{fmt.Sprintf("nats.test:%d", port)}
	res := rg.run(t.Context(), work)
	if res.err != nil {
		t.Fatalf("run: %v (stderr %s)", res.err, res.stderr.String())
	}
	if out := res.stdout.String(); strings.Contains(out, "200") {
		t.Errorf("the job reached a blocked address: %s", out)
	}
	found := false
	for _, d := range res.denials() {
		found = found || d.Host == "nats.test" && d.Port == port && d.Reason == schema.EgressNotPublic
	}
	if !found {
		t.Errorf("no not_public refusal of nats.test:%d among %+v", port, res.denials())
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("the blocked server was hit %d times", n)
	}
}
