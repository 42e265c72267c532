package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/brig-dev/brig/internal/devstack"
	"github.com/brig-dev/brig/internal/egress/allow"
	"github.com/brig-dev/brig/internal/egress/egresstest"
	"github.com/brig-dev/brig/internal/egress/proxy"
	"github.com/brig-dev/brig/internal/egress/wire"
	"github.com/brig-dev/brig/schema"
	"github.com/brig-dev/brig/sdk"
	"github.com/brig-dev/brig/worker"
)

// egressProbe runs the probes in args.json one after the other and writes
// what each got to result.json: an HTTP status line and the test server's
// reply, the addresses a name resolved to, a DNS answer's rcode, or the
// error. Every connection has a timeout; "fail" makes the job exit 1 after
// its probes.
const egressProbe = `
import json, random, socket, ssl, struct, sys
args = json.load(open("/work/args.json"))
ctx = ssl.create_default_context(cadata=args["ca"])
TIMEOUT = 5

def family(p):
    return socket.AF_INET6 if p.get("v6") else socket.AF_INET

def dial(p):
    if "addr" not in p:
        return socket.create_connection((p["host"], p["port"]), timeout=TIMEOUT)
    s = socket.socket(family(p), socket.SOCK_STREAM)
    s.settimeout(TIMEOUT)
    try:
        s.connect((p["addr"], p["port"]))
    except BaseException:
        s.close()
        raise
    return s

def read_all(s):
    data = b""
    while True:
        try:
            chunk = s.recv(65536)
        except (ssl.SSLEOFError, ConnectionResetError, TimeoutError):
            return data
        if not chunk:
            return data
        data += chunk

def read_head(s):
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(1)
        if not chunk:
            break
        data += chunk
    return data

def response(data):
    head, _, body = data.partition(b"\r\n\r\n")
    line = head.split(b"\r\n", 1)[0].decode("latin-1")
    parts = line.split(" ")
    out = {"line": line, "status": int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0}
    try:
        out["reply"] = json.loads(body)
    except ValueError:
        out["got"] = data[:300].decode("latin-1")
    return out

def request(p):
    return ("GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n" % (p.get("path", "/"), p.get("hosthdr") or p["host"])).encode()

def https(p):
    c, sni = ctx, p.get("sni") or p["host"]
    if p.get("nosni"):
        c = ssl.create_default_context(cadata=args["ca"])
        c.check_hostname, sni = False, None
    with c.wrap_socket(dial(p), server_hostname=sni) as t:
        t.sendall(request(p))
        return response(read_all(t))

def http(p):
    with dial(p) as s:
        s.sendall(request(p))
        return response(read_all(s))

def raw(p):
    with dial(p) as s:
        s.sendall(p["payload"].encode("latin-1"))
        return {"got": read_all(s)[:2000].decode("latin-1")}

def connect(p):
    s = socket.create_connection(("127.0.0.1", 3128), timeout=TIMEOUT)
    with s:
        s.sendall(("CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (p["target"], p["target"])).encode())
        head = read_head(s)
        out = response(head)
        if out["status"] == 200 and p.get("sni"):
            with ctx.wrap_socket(s, server_hostname=p["sni"]) as t:
                t.sendall(request({"host": p["sni"], "path": p.get("path", "/")}))
                out["inner"] = response(read_all(t))
                out["inner"]["ok"] = True
        return out

def absolute(p):
    with socket.create_connection(("127.0.0.1", 3128), timeout=TIMEOUT) as s:
        s.sendall(("GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n" % (p["url"], p["host"])).encode())
        return response(read_all(s))

def wire(p):
    # Speak the relay's protocol to the proxy's socket directly, as any
    # job may: the header names the destination, the request follows.
    dst = p.get("dst") or "%s:%d" % (socket.gethostbyname(p["dsthost"]), p["dstport"])
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(TIMEOUT)
        s.connect("/run/brig/egress.sock")
        s.sendall((json.dumps({"v": 1, "kind": "tcp", "dst": dst}) + "\n").encode())
        s.sendall(request(p))
        return response(read_all(s))

def resolve(p):
    infos = socket.getaddrinfo(p["host"], 443, family(p), socket.SOCK_STREAM)
    return {"addrs": sorted(set(i[4][0] for i in infos))}

def dns(p):
    q = struct.pack(">HHHHHH", random.randrange(65536), 0x0100, 1, 0, 0, 0)
    for label in p["host"].split("."):
        q += bytes([len(label)]) + label.encode()
    q += b"\0" + struct.pack(">HH", p["qtype"], 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(TIMEOUT)
        s.sendto(q, (p.get("addr", "127.0.0.1"), 53))
        data = s.recv(4096)
    flags, _, answers = struct.unpack(">HHH", data[2:8])
    return {"rcode": flags & 15, "answers": answers}

def udp(p):
    with socket.socket(family(p), socket.SOCK_DGRAM) as s:
        s.sendto(b"brig egress probe", (p.get("addr") or p["host"], p["port"]))
    return {}

results = {}
for p in args["probes"]:
    try:
        r = globals()[p["kind"]](p)
        r["ok"] = True
    except Exception as e:
        r = {"ok": False, "error": "%s: %s" % (type(e).__name__, e)}
    results[p["name"]] = r
json.dump(results, open("/work/out/result.json", "w"))
if args.get("fail"):
    sys.exit("failing after the probes")
`

// Names of the e2e egress tests beyond egresstest's own.
const (
	// frontName is on the list and resolves to the decoy Net: only a
	// fronting probe connects to it, and it must be refused before the
	// proxy resolves it.
	frontName = "front.test"
	// unlistedName is not on the list; it resolves to the decoy Net, so
	// that a proxy that let it through would show in the decoy's hits.
	unlistedName = "unlisted.test"
	// mixedName is on the list and resolves to the decoy's private, host
	// and IPv6 addresses first, then to the good Net: the proxy must dial
	// the good Net alone.
	mixedName = "mixed.test"
	// tunnelName is a subdomain of the wildcard that carries data, as a
	// DNS tunnel's would: it gets a synthetic address, and no resolver
	// ever hears of it.
	tunnelName = "c2VjcmV0LWRhdGE.0001.wild.test"
)

// egressResult is what egressProbe reports of one probe.
type egressResult struct {
	OK      bool              `json:"ok"`
	Error   string            `json:"error"`
	Line    string            `json:"line"`
	Status  int               `json:"status"`
	Reply   *egresstest.Reply `json:"reply"`
	Got     string            `json:"got"`
	Inner   *egressResult     `json:"inner"`
	Addrs   []string          `json:"addrs"`
	RCode   int               `json:"rcode"`
	Answers int               `json:"answers"`
}

func (r egressResult) String() string {
	b, _ := json.Marshal(r)
	return string(b)
}

// egressWorld is what the egress cases run against: a stack whose worker
// proxies to two test Nets. good holds the servers allowed names reach;
// decoy holds every address that must never be reached (private, IPv6,
// the names that are not on the list or must be refused first), so its
// hits must stay zero whatever the cases do.
type egressWorld struct {
	good, decoy *egresstest.Net
	client      *sdk.Client // the default tenant's, on the world's own stack
	fn          string      // the function with the egress list
}

// TestEgress runs the issue 15 checklist ("How to test it here") under
// each runtime: jobs of a function with an egress list probe the test
// Nets through brig's relay and proxy, and each case checks what the job
// got, the egress_denied events and the terminal event's denials. At the
// end the decoy Net must not have been reached at all.
func TestEgress(t *testing.T) {
	t.Parallel()
	w := startEgressWorld(t)
	t.Run("runtimes", func(t *testing.T) {
		for _, rt := range []string{schema.RuntimeRunc, schema.RuntimeRunsc} {
			t.Run(rt, func(t *testing.T) {
				t.Parallel()
				requireRuntime(t, rt)
				for _, c := range egressCases(w, rt) {
					t.Run(c.name, func(t *testing.T) {
						t.Parallel()
						runEgressCase(t, w, rt, c)
					})
				}
			})
		}
	})
	if got := w.decoy.Hits(); got != (egresstest.Hits{}) {
		t.Errorf("the decoy Net was reached: %+v", got)
	}
	if got := w.good.Hits(); got.Echo != 0 || got.UDP != 0 || got.DNS != 0 {
		t.Errorf("the good Net's echo, UDP or DNS server was reached: %+v", got)
	}
	for _, name := range []string{unlistedName, egresstest.NameWildApex, egresstest.NameOther, frontName, tunnelName} {
		if n := w.good.Resolver.Lookups(name); n != 0 {
			t.Errorf("the proxy resolved %s %d times; a refused name, or one only looked up, is never resolved", name, n)
		}
	}
	t.Logf("hits: good %+v, decoy %+v", w.good.Hits(), w.decoy.Hits())
}

// startEgressWorld starts the two Nets and a stack of its own whose
// worker's proxy resolves with the good Net's resolver and counts both
// Nets' public addresses, and nothing else of theirs, as public; and
// deploys the function the cases run.
func startEgressWorld(t *testing.T) *egressWorld {
	t.Helper()
	w := &egressWorld{good: egresstest.Start(t), decoy: egresstest.Start(t), fn: "egress-" + randomHex(4)}
	r, d := w.good.Resolver, w.decoy
	r.Set(egresstest.NamePrivate, d.PrivateAddr)
	r.Set(egresstest.NameHost, d.HostAddr)
	r.Set(egresstest.NameV6, d.IPv6Addr)
	for _, name := range []string{egresstest.NameWildApex, egresstest.NameOther, frontName, unlistedName} {
		r.Set(name, d.PublicAddr)
	}
	r.Set(mixedName, d.PrivateAddr, d.HostAddr, d.IPv6Addr, w.good.PublicAddr)

	ctx, cancel := context.WithTimeout(context.Background(), jobBudget)
	defer cancel()
	dir := t.TempDir()
	st, err := devstack.Start(ctx, devstack.Config{
		Listen: "127.0.0.1:0", DataDir: filepath.Join(dir, "jetstream"), SkipImage: true, Logger: logger,
		Worker: worker.Config{
			ID: workerID + "-egress", InitBinary: brigBin, RuntimeDir: filepath.Join(dir, "run"), Slots: 4, Prewarm: 1,
			Egress: proxy.Config{Resolver: &rebinder{Resolver: r, public: w.good.PublicAddr, private: d.PrivateAddr}, Logger: logger, Policy: allow.Policy{
				TestPublic: []netip.Prefix{w.good.PublicPrefix, d.PublicPrefix},
			}},
		},
	})
	if err != nil {
		t.Fatalf("start stack: %v", err)
	}
	t.Cleanup(func() { stopWithin(t, "egress stack", st.Stop) })
	w.client = tenantClient(t, st)
	fn := schema.Python()
	fn.Name = w.fn
	fn.Egress = []string{
		egresstest.NameOK, egresstest.NameOK + ":8022", "*.wild.test", frontName,
		egresstest.NamePrivate, egresstest.NameHost, egresstest.NameLoop, egresstest.NameV6, mixedName,
		"*." + rebindZone,
	}
	deployOn(ctx, t, st.Conn, fn)
	return w
}

// rebindZone's subdomains rebind: see rebinder.
const rebindZone = "rebind.test"

// rebinder answers each name under rebindZone with a public address the
// first time and a private one after, as a rebinding attacker's DNS
// would; other names go to its Resolver.
type rebinder struct {
	*egresstest.Resolver
	public, private netip.Addr
	mu              sync.Mutex
	seen            map[string]bool
}

func (r *rebinder) LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error) {
	name := strings.ToLower(strings.TrimSuffix(host, "."))
	if !strings.HasSuffix(name, "."+rebindZone) {
		return r.Resolver.LookupNetIP(ctx, network, host)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.seen == nil {
		r.seen = map[string]bool{}
	}
	first := !r.seen[name]
	r.seen[name] = true
	if first {
		return []netip.Addr{r.public}, nil
	}
	return []netip.Addr{r.private}, nil
}

// egressCase is one job of probes and what it must end with.
type egressCase struct {
	name   string
	probes []egressStep
	// denied are the refusals the job's egress_denied events hold, in any
	// order; no other.
	denied []schema.EgressDenial
	// fail makes the job exit 1 after its probes: it must end failed with
	// error type EgressDenied.
	fail bool
	// egress is the job's own list, within its function's; nil runs with
	// the function's.
	egress []string
}

// egressStep is one probe of a job and its check, which returns what is
// wrong, or "".
type egressStep struct {
	spec  map[string]any
	check func(egressResult) string
}

func (p egressStep) name() string { return p.spec["name"].(string) }

func runEgressCase(t *testing.T, w *egressWorld, rt string, c egressCase) {
	specs := make([]map[string]any, len(c.probes))
	for i, p := range c.probes {
		specs[i] = p.spec
		if slices.ContainsFunc(c.probes[:i], func(q egressStep) bool { return q.name() == p.name() }) {
			t.Fatalf("two probes named %q: give one a label", p.name())
		}
	}
	args, err := json.Marshal(map[string]any{"ca": string(w.good.CAPEM), "probes": specs, "fail": c.fail})
	if err != nil {
		t.Fatal(err)
	}
	job := schema.Job{ID: newID("egress-" + c.name), Function: w.fn, Runtime: rt, Code: egressProbe, Args: args, TimeoutMS: 90_000, Egress: c.egress}
	ctx, cancel := context.WithTimeout(context.Background(), jobBudget)
	defer cancel()
	ev, err := w.client.Run(ctx, job)
	if ev == nil {
		t.Fatalf("job %s: no terminal event: %v", job.ID, err)
	}
	t.Logf("%s on %s: %s; output %s; stderr %q", c.name, rt, brief(ev), clip(string(ev.Output)), clip(ev.Stderr))
	if c.fail {
		wantStatus(t, ev, schema.EventResult, schema.StatusFailed, schema.ErrEgressDenied)
	} else {
		wantStatus(t, ev, schema.EventResult, schema.StatusSucceeded, "")
	}

	var got map[string]egressResult
	if err := json.Unmarshal(ev.Output, &got); err != nil {
		t.Fatalf("probe output %q: %v (stderr %q)", ev.Output, err, ev.Stderr)
	}
	for _, p := range c.probes {
		r, ok := got[p.name()]
		switch {
		case !ok:
			t.Errorf("probe %s: no result", p.name())
		case p.check != nil:
			if msg := p.check(r); msg != "" {
				t.Errorf("probe %s %v: %s; got %s", p.name(), p.spec, msg, r)
			}
		}
	}
	wantDenials(t, w.client, job.ID, ev, c.denied)
}

// wantDenials checks a job's egress_denied events against want (as a set:
// host, port and reason; each distinct refusal is reported once) and its
// terminal event's count (every refusal, repeats too) and list against the
// events.
func wantDenials(t *testing.T, c *sdk.Client, jobID string, terminal *schema.Event, want []schema.EgressDenial) {
	t.Helper()
	type key struct {
		host   string
		port   int
		reason schema.EgressReason
	}
	var got []key
	var events []schema.EgressDenial
	for _, ev := range eventsOn(t, c, jobID) {
		if ev.Type == schema.EventEgressDenied && ev.EgressDeniedCount == 0 {
			got = append(got, key{ev.Host, ev.Port, ev.Reason})
			events = append(events, schema.EgressDenial{Host: ev.Host, Port: ev.Port, Reason: ev.Reason, Message: ev.Message})
		}
	}
	wanted := make([]key, len(want))
	for i, d := range want {
		wanted[i] = key{d.Host, d.Port, d.Reason}
		if !slices.Contains(got, wanted[i]) {
			t.Errorf("no egress_denied event %s port %d %s; got %v", d.Host, d.Port, d.Reason, events)
		}
	}
	for i, k := range got {
		if !slices.Contains(wanted, k) {
			t.Errorf("unexpected egress_denied event %s port %d %s (%s)", k.host, k.port, k.reason, events[i].Message)
		}
		if slices.Contains(got[:i], k) {
			t.Errorf("egress_denied event %s port %d %s twice; a repeat is counted, not reported", k.host, k.port, k.reason)
		}
	}
	if terminal.EgressDeniedCount < len(events) {
		t.Errorf("terminal egress_denied_count %d, want at least %d (the events)", terminal.EgressDeniedCount, len(events))
	}
	if n := min(len(events), schema.MaxTerminalEgressDenials); len(terminal.EgressDenials) != n {
		t.Errorf("terminal lists %d egress_denials, want %d: %v", len(terminal.EgressDenials), n, terminal.EgressDenials)
	}
	for _, d := range terminal.EgressDenials {
		if !slices.Contains(got, key{d.Host, d.Port, d.Reason}) {
			t.Errorf("terminal egress_denials has %s port %d %s, which no event has", d.Host, d.Port, d.Reason)
		}
	}
}

func denial(host string, port int, reason schema.EgressReason) schema.EgressDenial {
	return schema.EgressDenial{Host: host, Port: port, Reason: reason}
}

// egressCases are the jobs each runtime runs: about one per item of the
// issue's checklist, probes batched.
func egressCases(w *egressWorld, rt string) []egressCase {
	return []egressCase{allowedCase(w), namesCase(w), addressesCase(w, rt), frontingCase(w), narrowedCase(w), failCase()}
}

// allowedCase: allowed names answer over HTTPS and HTTP, through the
// relay's listeners and its explicit proxy, and the wildcard matches a
// subdomain; DNS hands out synthetic addresses, without asking a resolver.
func allowedCase(w *egressWorld) egressCase {
	good := w.good.PublicAddr
	ok, sub := egresstest.NameOK, egresstest.NameWildSub
	return egressCase{name: "allowed", probes: []egressStep{
		{spec(map[string]any{"kind": "https", "host": ok, "port": 443, "path": "/a"}), replied(good, ok, ok, "/a")},
		{spec(map[string]any{"kind": "http", "host": ok, "port": 80, "path": "/b"}), replied(good, ok, "", "/b")},
		{spec(map[string]any{"kind": "https", "host": sub, "port": 443, "path": "/c"}), replied(good, sub, sub, "/c")},
		{spec(map[string]any{"kind": "connect", "target": ok + ":443", "sni": ok, "path": "/d"}), func(r egressResult) string {
			if r.Status != 200 || r.Inner == nil {
				return "CONNECT to an allowed name was not established"
			}
			return replied(good, ok, ok, "/d")(*r.Inner)
		}},
		{spec(map[string]any{"kind": "absolute", "url": "http://" + ok + "/e", "host": ok}), replied(good, ok, "", "/e")},
		{spec(map[string]any{"kind": "resolve", "host": ok}), synthetic},
		{spec(map[string]any{"kind": "resolve", "host": sub}), synthetic},
		{spec(map[string]any{"kind": "resolve", "host": tunnelName}), synthetic},
	}}
}

// namesCase: names not on the list, the wildcard's apex among them, get
// no DNS answer, no CONNECT and no absolute-form request; an IP literal
// (dotted, IPv4-mapped IPv6, one decimal number) gets none of those, nor
// passes as a Host header; AAAA answers are empty, and DNS queries other
// than A/AAAA (tunnelling) are refused.
func namesCase(w *egressWorld) egressCase {
	decoy := w.decoy.PublicAddr.String()
	a4 := w.decoy.PublicAddr.As4()
	decimal := fmt.Sprint(uint32(a4[0])<<24 | uint32(a4[1])<<16 | uint32(a4[2])<<8 | uint32(a4[3]))
	apex, ok := egresstest.NameWildApex, egresstest.NameOK
	return egressCase{name: "names", probes: []egressStep{
		{spec(map[string]any{"kind": "resolve", "host": unlistedName}), failed},
		{spec(map[string]any{"kind": "resolve", "host": apex}), failed},
		{spec(map[string]any{"kind": "resolve", "host": ok, "v6": true}), failed},
		{spec(map[string]any{"kind": "dns", "host": unlistedName, "qtype": 1}), rcode(5)},
		{spec(map[string]any{"kind": "dns", "host": ok, "qtype": 16}), rcode(5)}, // TXT: a tunnel's type
		{spec(map[string]any{"kind": "dns", "host": ok, "qtype": 28}), rcode(0, 0)},
		{spec(map[string]any{"kind": "connect", "target": unlistedName + ":443"}), status(403)},
		{spec(map[string]any{"kind": "connect", "target": apex + ":443"}), status(403)},
		{spec(map[string]any{"kind": "connect", "target": decoy + ":443"}), status(403)},
		{spec(map[string]any{"kind": "connect", "target": "[::ffff:" + decoy + "]:443"}), status(403)},
		{spec(map[string]any{"kind": "connect", "target": decimal + ":443"}), status(403)},
		{spec(map[string]any{"kind": "absolute", "url": "http://" + decoy + "/", "host": decoy}), status(403)},
		{spec(map[string]any{"kind": "http", "host": ok, "hosthdr": decoy, "port": 80}), status(403)},
		{spec(map[string]any{"kind": "dns", "host": decoy, "qtype": 1}), rcode(5)},
		{spec(map[string]any{"kind": "absolute", "url": "http://" + unlistedName + "/", "host": unlistedName}), status(403)},
		{spec(map[string]any{"kind": "https", "host": unlistedName, "port": 443}), failed},
	}, denied: []schema.EgressDenial{
		denial(unlistedName, wire.DNSPort, schema.EgressNotAllowed),
		denial(apex, wire.DNSPort, schema.EgressNotAllowed),
		denial(unlistedName, 80, schema.EgressNotAllowed),
		denial(ok, wire.DNSPort, schema.EgressProtocol),
		denial(unlistedName, 443, schema.EgressNotAllowed),
		denial(apex, 443, schema.EgressNotAllowed),
		denial(decoy, 443, schema.EgressIPLiteral), // also [::ffff:decoy] and decoy as one decimal number
		denial(decoy, 80, schema.EgressIPLiteral),
		denial(decoy, wire.DNSPort, schema.EgressIPLiteral),
		denial(ok, 80, schema.EgressMismatch),
	}}
}

// addressesCase: allowed names that resolve to private, host, loopback or
// IPv6 addresses are refused, one that resolves to those and a public
// address reaches the public one alone, and one whose DNS rebinds from a
// public to a private address is refused once it has (the proxy resolves
// and checks at each connection); IP literals (through the relay, or in a
// header written to the proxy's socket directly), IPv6 and UDP get
// nowhere.
func addressesCase(w *egressWorld, rt string) egressCase {
	d := w.decoy
	rebind := rt + "." + rebindZone // a name of its own per runtime: its first lookup is the public one
	return egressCase{name: "addresses", probes: []egressStep{
		{spec(map[string]any{"kind": "http", "host": rebind, "port": 80, "path": "/1"}), replied(w.good.PublicAddr, rebind, "", "/1")},
		{spec(map[string]any{"kind": "http", "host": rebind, "port": 80, "path": "/2"}), status(403)},
		{spec(map[string]any{"kind": "https", "host": egresstest.NamePrivate, "port": 443}), failed},
		{spec(map[string]any{"kind": "http", "host": egresstest.NameHost, "port": 80}), notReplied},
		{spec(map[string]any{"kind": "http", "host": egresstest.NameLoop, "port": 80}), notReplied},
		{spec(map[string]any{"kind": "https", "host": egresstest.NameV6, "port": 443}), failed},
		{spec(map[string]any{"kind": "http", "host": mixedName, "port": 80, "path": "/m"}), replied(w.good.PublicAddr, mixedName, "", "/m")},
		{spec(map[string]any{"kind": "http", "host": egresstest.NameOK, "addr": "127.0.0.1", "port": 80}), notReplied},
		{spec(map[string]any{"kind": "http", "host": egresstest.NameOK, "addr": "127.64.1.2", "port": 80}), notReplied},
		{spec(map[string]any{"kind": "wire", "host": egresstest.NameOK, "dst": d.PublicAddr.String() + ":80"}), notReplied},
		{spec(map[string]any{"kind": "http", "host": egresstest.NameOK, "addr": d.PublicAddr.String(), "port": 80}), failed},
		{spec(map[string]any{"kind": "https", "host": egresstest.NamePrivate, "addr": d.PrivateAddr.String(), "port": 443}), failed},
		{spec(map[string]any{"kind": "http", "host": egresstest.NameOK, "addr": d.IPv6Addr.String(), "port": 80, "v6": true}), failed},
		{spec(map[string]any{"kind": "http", "host": egresstest.NameOK, "addr": "::1", "port": 80, "v6": true}), failed},
		{spec(map[string]any{"kind": "dns", "host": egresstest.NameOK, "qtype": 1, "addr": d.PublicAddr.String()}), failed},
		{spec(map[string]any{"kind": "udp", "addr": d.PublicAddr.String(), "port": egresstest.PortUDP}), nil},
		{spec(map[string]any{"kind": "udp", "addr": d.PublicAddr.String(), "port": egresstest.PortDNS}), nil},
		{spec(map[string]any{"kind": "udp", "host": egresstest.NameOK, "port": egresstest.PortUDP}), nil},
		{spec(map[string]any{"kind": "udp", "addr": "127.64.1.2", "port": egresstest.PortUDP}), nil},
		{spec(map[string]any{"kind": "udp", "addr": d.IPv6Addr.String(), "port": egresstest.PortUDP, "v6": true}), nil},
	}, denied: []schema.EgressDenial{
		denial(rebind, 80, schema.EgressNotPublic),
		denial(egresstest.NamePrivate, 443, schema.EgressNotPublic),
		denial(egresstest.NameHost, 80, schema.EgressNotPublic),
		denial(egresstest.NameLoop, 80, schema.EgressNotPublic),
		denial(egresstest.NameV6, 443, schema.EgressNotPublic),
		denial("127.0.0.1", 80, schema.EgressIPLiteral),
		denial("127.64.1.2", 80, schema.EgressIPLiteral),
		denial(d.PublicAddr.String(), 80, schema.EgressIPLiteral),
	}}
}

// frontingCase: SNI or Host other than the name the connection was opened
// for (domain fronting), also inside a CONNECT tunnel, a second request to
// another Host on a kept-alive connection, an absolute-form target naming
// another host, two Host headers, no SNI, no Host, a port the name does not have
// (through the relay, or asked of the proxy's socket directly) and bytes
// that are neither TLS nor HTTP are refused. A Host inside TLS is the server's business:
// the proxy cannot see it, but the connection still goes to the SNI's
// name's address, never to the Host's.
func frontingCase(w *egressWorld) egressCase {
	good := w.good.PublicAddr
	ok, other, sub := egresstest.NameOK, egresstest.NameOther, egresstest.NameWildSub
	pipelined := "GET /1 HTTP/1.1\r\nHost: " + ok + "\r\n\r\nGET /2 HTTP/1.1\r\nHost: " + other + "\r\nConnection: close\r\n\r\n"
	absoluteOther := "GET http://" + other + "/x HTTP/1.1\r\nHost: " + ok + "\r\nConnection: close\r\n\r\n"
	twoHosts := "GET /x HTTP/1.1\r\nHost: " + ok + "\r\nHost: " + other + "\r\nConnection: close\r\n\r\n"
	return egressCase{name: "fronting", probes: []egressStep{
		{spec(map[string]any{"kind": "https", "host": frontName, "sni": other, "hosthdr": other, "port": 443}), failed},
		{spec(map[string]any{"kind": "http", "host": frontName, "hosthdr": other, "port": 80}), status(403)},
		{spec(map[string]any{"kind": "https", "host": ok, "hosthdr": other, "port": 443, "path": "/inner"}), replied(good, other, ok, "/inner")},
		{spec(map[string]any{"label": "pipelined", "kind": "raw", "host": ok, "port": 80, "payload": pipelined}), func(r egressResult) string {
			switch {
			case !strings.Contains(r.Got, `"path":"/1"`):
				return "the first request, to the allowed Host, got no reply"
			case strings.Contains(r.Got, `"path":"/2"`):
				return "the second request, to another Host, reached the server"
			}
			return ""
		}},
		{spec(map[string]any{"label": "absolute-form target", "kind": "raw", "host": ok, "port": 80, "payload": absoluteOther}), notReached(other)},
		{spec(map[string]any{"label": "no SNI", "kind": "https", "host": ok, "port": 443, "nosni": true}), failed},
		{spec(map[string]any{"label": "no Host", "kind": "raw", "host": ok, "port": 80, "payload": "GET /x HTTP/1.0\r\n\r\n"}), func(r egressResult) string {
			if !strings.HasPrefix(r.Got, "HTTP/1.1 403 ") {
				return "a request without a Host header was not refused"
			}
			return ""
		}},
		{spec(map[string]any{"label": "two Host headers", "kind": "raw", "host": ok, "port": 80, "payload": twoHosts}), notReached(other)},
		{spec(map[string]any{"kind": "raw", "host": ok, "port": egresstest.PortEcho, "payload": "\x00echo me\n"}), func(r egressResult) string {
			if strings.Contains(r.Got, "echo me") {
				return "bytes that are neither TLS nor HTTP reached the echo server"
			}
			return ""
		}},
		{spec(map[string]any{"kind": "http", "host": sub, "port": egresstest.PortEcho}), notReplied},
		{spec(map[string]any{"kind": "connect", "target": ok + ":443", "sni": other}), failed},
		{spec(map[string]any{"kind": "wire", "host": ok, "dsthost": ok, "dstport": 8443}), notReplied},
	}, denied: []schema.EgressDenial{
		denial(ok, 443, schema.EgressMismatch),
		denial(ok, 8443, schema.EgressNotAllowed),
		denial(frontName, 443, schema.EgressMismatch),
		denial(frontName, 80, schema.EgressMismatch),
		denial(ok, 80, schema.EgressMismatch), // the pipelined request, the absolute-form target
		denial(ok, 80, schema.EgressProtocol), // two Host headers
		denial(ok, egresstest.PortEcho, schema.EgressProtocol),
		denial(sub, egresstest.PortEcho, schema.EgressNotAllowed),
	}}
}

// narrowedCase: a job's own list narrows its function's: a name only the
// function lists is refused.
func narrowedCase(w *egressWorld) egressCase {
	ok, sub := egresstest.NameOK, egresstest.NameWildSub
	return egressCase{name: "narrowed", egress: []string{ok}, probes: []egressStep{
		{spec(map[string]any{"kind": "https", "host": ok, "port": 443, "path": "/n"}), replied(w.good.PublicAddr, ok, ok, "/n")},
		{spec(map[string]any{"kind": "resolve", "host": sub}), failed},
		{spec(map[string]any{"kind": "connect", "target": sub + ":443"}), status(403)},
	}, denied: []schema.EgressDenial{
		denial(sub, wire.DNSPort, schema.EgressNotAllowed),
		denial(sub, 443, schema.EgressNotAllowed),
	}}
}

// failCase: a job that fails after a refusal ends with EgressDenied.
func failCase() egressCase {
	return egressCase{name: "fail", fail: true, probes: []egressStep{
		{spec(map[string]any{"kind": "https", "host": unlistedName, "port": 443}), failed},
	}, denied: []schema.EgressDenial{denial(unlistedName, wire.DNSPort, schema.EgressNotAllowed)}}
}

// spec names a probe after its fields (and its label, where the fields
// alone would not tell it from another), so that results are easy to read.
func spec(m map[string]any) map[string]any {
	var parts []string
	for _, k := range []string{"label", "kind", "host", "addr", "target", "url", "dst", "dsthost", "dstport", "port", "path", "sni", "hosthdr", "qtype", "v6"} {
		if v, ok := m[k]; ok {
			parts = append(parts, fmt.Sprintf("%s=%v", k, v))
		}
	}
	m["name"] = strings.Join(parts, " ")
	return m
}

// replied checks that the good Net's server answered with host, sni and
// path.
func replied(at netip.Addr, host, sni, path string) func(egressResult) string {
	return func(r egressResult) string {
		switch {
		case !r.OK:
			return "failed"
		case r.Status != 200 || r.Reply == nil:
			return "no reply from the test server"
		case r.Reply.Host != host || r.Reply.SNI != sni || r.Reply.Path != path:
			return fmt.Sprintf("want host %q sni %q path %q", host, sni, path)
		}
		if ap, err := netip.ParseAddrPort(r.Reply.Local); err != nil || ap.Addr() != at {
			return fmt.Sprintf("reached %s, want %s", r.Reply.Local, at)
		}
		return ""
	}
}

// notReached: the test server never saw a request for host.
func notReached(host string) func(egressResult) string {
	return func(r egressResult) string {
		if strings.Contains(r.Got, `"host":"`+host+`"`) || (r.Reply != nil && r.Reply.Host == host) {
			return "the test server got a request for " + host
		}
		return ""
	}
}

func failed(r egressResult) string {
	if r.OK {
		return "succeeded; want an error"
	}
	return ""
}

// notReplied: an error, or an answer that is not the test server's.
func notReplied(r egressResult) string {
	if r.Reply != nil {
		return "the test server answered"
	}
	return ""
}

func status(code int) func(egressResult) string {
	return func(r egressResult) string {
		if !r.OK || r.Status != code || r.Reply != nil {
			return fmt.Sprintf("want status %d from the proxy", code)
		}
		return ""
	}
}

// rcode wants a DNS answer with that rcode and, if given, that many
// answers.
func rcode(code int, answers ...int) func(egressResult) string {
	return func(r egressResult) string {
		if !r.OK || r.RCode != code || (len(answers) > 0 && r.Answers != answers[0]) {
			return fmt.Sprintf("want rcode %d %v", code, answers)
		}
		return ""
	}
}

// synthetic wants addresses from wire.Synthetic only.
func synthetic(r egressResult) string {
	if !r.OK || len(r.Addrs) == 0 {
		return "did not resolve"
	}
	for _, a := range r.Addrs {
		if ip, err := netip.ParseAddr(a); err != nil || !wire.Synthetic.Contains(ip) {
			return fmt.Sprintf("%s is not in %s", a, wire.Synthetic)
		}
	}
	return ""
}
