package e2e

import (
	"slices"
	"testing"

	"github.com/brig-dev/brig/schema"
)

// netnsCode lists the local and remote ports (with TCP states) in the
// sandbox's /proc/net/tcp and tcp6. With {"secret": [b, ...]} in its args it
// first leaves TIME_WAIT sockets on loopback whose ports, 1024 + b, encode
// the secret: it listens, connects, and closes the accepted end first.
const netnsCode = `import json, socket, time
args = json.load(open("/work/args.json"))
for b in args.get("secret", []):
    port = 1024 + b
    srv = socket.socket()
    srv.bind(("127.0.0.1", port))
    srv.listen(1)
    cli = socket.create_connection(("127.0.0.1", port))
    conn, _ = srv.accept()
    conn.close()  # closed first: this end waits in TIME_WAIT on the port
    time.sleep(0.05)
    cli.close()
    srv.close()
ports = []
for name in ["tcp", "tcp6"]:
    try:
        rows = open("/proc/net/" + name).read().splitlines()[1:]
    except FileNotFoundError:
        continue
    for row in rows:
        f = row.split()
        ports.append({"local": int(f[1].split(":")[1], 16), "remote": int(f[2].split(":")[1], 16), "state": f[3]})
json.dump({"ports": ports}, open("/work/out/result.json", "w"))`

// netnsPort is a TCP socket netnsCode found; State is /proc/net/tcp's hex
// state ("06": TIME_WAIT).
type netnsPort struct {
	Local  int    `json:"local"`
	Remote int    `json:"remote"`
	State  string `json:"state"`
}

type netnsReport struct {
	Ports []netnsPort `json:"ports"`
}

// has tells whether any socket in the report uses port.
func (r netnsReport) has(port int) bool {
	return slices.ContainsFunc(r.Ports, func(p netnsPort) bool { return p.Local == port || p.Remote == port })
}

// TestReuseNetnsDiscardsLeftSockets: in reuse mode, a job that leaves
// sockets in the container's network namespace (TIME_WAIT connections on
// loopback, whose ports it chose, outlive it by a minute) ends the
// container: the next job runs in a new one and finds none of those ports.
// A job that opened no socket keeps its container for the next job.
func TestReuseNetnsDiscardsLeftSockets(t *testing.T) {
	t.Parallel()
	fn := deployReuse(t, "reuse-netns")
	secret := []int{0x5a, 0xc3}
	run := func(prefix, args string) (netnsReport, schema.Event) {
		t.Helper()
		j := pythonJob(prefix, netnsCode)
		j.Function, j.Args = fn, []byte(args)
		ev, err := runJob(t, j)
		if err != nil {
			t.Fatalf("job %s: %v (%s)", prefix, err, brief(ev))
		}
		var r netnsReport
		probeOutput(t, ev, &r)
		return r, startedOn(t, brig, j.ID)
	}

	a, aStart := run("netns-a", `{"secret":[90,195]}`)
	for _, b := range secret {
		found := false
		for _, p := range a.Ports {
			found = found || p.Local == 1024+b && p.State == "06"
		}
		if !found {
			t.Fatalf("job A left no TIME_WAIT socket on port %d (the test would prove nothing): %+v", 1024+b, a.Ports)
		}
	}

	b, bStart := run("netns-b", `{}`)
	if bStart.Container == aStart.Container || bStart.Sandbox == schema.SandboxReused {
		t.Errorf("job B ran in %.12s (%s), the container job A left sockets in", bStart.Container, bStart.Sandbox)
	}
	for _, s := range secret {
		if b.has(1024 + s) {
			t.Errorf("job B found job A's port %d: %+v", 1024+s, b.Ports)
		}
	}
	if len(b.Ports) > 0 {
		t.Errorf("job B found sockets in a new container: %+v", b.Ports)
	}

	// B opened no socket: C gets its container.
	c, cStart := run("netns-c", `{}`)
	if cStart.Container != bStart.Container || cStart.Sandbox != schema.SandboxReused {
		t.Errorf("job C ran in %.12s (%s), want job B's %.12s reused", cStart.Container, cStart.Sandbox, bStart.Container)
	}
	if len(c.Ports) > 0 {
		t.Errorf("job C found sockets: %+v", c.Ports)
	}
}
