package e2e

import (
	"encoding/json"
	"net"
	"strconv"
	"strings"
	"testing"
)

// isolationProbe reports, as result.json, what a job can see and do.
const isolationProbe = `
import json, os, socket

args = json.load(open("/work/args.json"))
facts = {"uid": os.getuid(), "gid": os.getgid(), "errors": {}}

status = {}
for line in open("/proc/self/status"):
    key, _, value = line.partition(":")
    status[key] = value.strip()
facts["cap_eff"] = status.get("CapEff", "")
facts["no_new_privs"] = status.get("NoNewPrivs", "")

def can_write(path):
    try:
        with open(path, "w") as f:
            f.write("x")
        os.remove(path)
        return True
    except OSError as e:
        facts["errors"][path] = str(e)
        return False

facts["writable"] = {p: can_write(p) for p in ["/etc/x", "/x", "/tmp/x", "/work/x"]}

# Opening the init for writing, never writing it: every container shares it.
try:
    os.close(os.open("/run/brig/init", os.O_WRONLY))
    facts["writable"]["/run/brig/init"] = True
except OSError as e:
    facts["errors"]["/run/brig/init"] = str(e)
    facts["writable"]["/run/brig/init"] = False

lines = open("/proc/net/dev").read().splitlines()[2:]
facts["interfaces"] = sorted(l.split(":")[0].strip() for l in lines if l.strip())

def can_connect(host, port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(2)
    try:
        s.connect((host, port))
        return True
    except OSError as e:
        facts["errors"]["%s:%d" % (host, port)] = str(e)
        return False
    finally:
        s.close()

facts["connects"] = {"%s:%d" % (h, p): can_connect(h, p) for h, p in [["1.1.1.1", 53]] + args["nats"]}
facts["env_brig_or_nats"] = sorted(k for k in os.environ if "NATS" in k.upper() or "BRIG" in k.upper())
facts["init_exists"] = os.path.isfile("/run/brig/init")

with open("/work/out/result.json", "w") as f:
    json.dump(facts, f)
`

type isolationFacts struct {
	UID           int               `json:"uid"`
	GID           int               `json:"gid"`
	CapEff        string            `json:"cap_eff"`
	NoNewPrivs    string            `json:"no_new_privs"`
	Writable      map[string]bool   `json:"writable"`
	Interfaces    []string          `json:"interfaces"`
	Connects      map[string]bool   `json:"connects"`
	EnvBrigOrNATS []string          `json:"env_brig_or_nats"`
	InitExists    bool              `json:"init_exists"`
	Errors        map[string]string `json:"errors"`
}

func TestIsolationDefaults(t *testing.T) {
	t.Parallel()
	job := pythonJob("isolation", isolationProbe)
	args, err := json.Marshal(map[string]any{"nats": natsTargets(t)})
	if err != nil {
		t.Fatal(err)
	}
	job.Args = args
	ev, err := runJob(t, job)
	if err != nil {
		t.Fatalf("probe: %v (event %s)", err, brief(ev))
	}
	var f isolationFacts
	if err := json.Unmarshal(ev.Output, &f); err != nil {
		t.Fatalf("probe output %q: %v (stderr %q)", ev.Output, err, ev.Stderr)
	}
	t.Logf("probe: %s", ev.Output)

	if f.UID != 65534 || f.GID != 65534 {
		t.Errorf("uid:gid = %d:%d, want 65534:65534", f.UID, f.GID)
	}
	if capEff, err := strconv.ParseUint(f.CapEff, 16, 64); err != nil || capEff != 0 {
		t.Errorf("CapEff = %q, want 0", f.CapEff)
	}
	if f.NoNewPrivs != "1" {
		t.Errorf("NoNewPrivs = %q, want 1", f.NoNewPrivs)
	}
	for path, want := range map[string]bool{"/etc/x": false, "/x": false, "/tmp/x": true, "/work/x": true, "/run/brig/init": false} {
		if got, ok := f.Writable[path]; !ok || got != want {
			t.Errorf("%s writable = %v (probed %v), want %v (%s)", path, got, ok, want, f.Errors[path])
		}
	}
	if strings.Join(f.Interfaces, ",") != "lo" {
		t.Errorf("network interfaces = %q, want only lo", f.Interfaces)
	}
	if len(f.Connects) < 2 {
		t.Errorf("connect probes = %v, want 1.1.1.1:53 and the NATS port", f.Connects)
	}
	for target, ok := range f.Connects {
		if ok {
			t.Errorf("job connected to %s", target)
		}
	}
	for _, k := range f.EnvBrigOrNATS {
		// docs/design.md §4: the job's own scoped token, the gateway's path and its
		// job id are the only brig variables a container may hold.
		switch k {
		case "BRIG_TOKEN", "BRIG_GATEWAY", "BRIG_JOB_ID": // the job's own credential and where to use it
		default:
			t.Errorf("environment holds %s", k)
		}
	}
	if !f.InitExists {
		t.Errorf("/run/brig/init does not exist")
	}
}

// natsTargets lists the shared NATS server's port on every IPv4 address of
// this host, loopback included: none may be reachable from a job.
func natsTargets(t *testing.T) [][2]any {
	t.Helper()
	_, portStr, err := net.SplitHostPort(stack.HostPort())
	if err != nil {
		t.Fatalf("nats address %q: %v", stack.HostPort(), err)
	}
	port, _ := strconv.Atoi(portStr)
	targets := [][2]any{{"127.0.0.1", port}}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatalf("host addresses: %v", err)
	}
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil && !ipn.IP.IsLoopback() {
			targets = append(targets, [2]any{ipn.IP.String(), port})
		}
	}
	return targets
}
