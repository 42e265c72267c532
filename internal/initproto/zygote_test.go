package initproto

import (
	"strings"
	"testing"
)

func TestStartupEnv(t *testing.T) {
	got := StartupEnv([]string{"PYTHONPATH=/a", "FOO=1", "LD_PRELOAD=x", "PATH=/bin", "TZ=UTC", "LC_ALL=C", "HOME=/tmp", "BRIG_TOKEN=t", "OPENSSL_CONF=/c"})
	want := "HOME=/tmp LC_ALL=C LD_PRELOAD=x OPENSSL_CONF=/c PATH=/bin PYTHONPATH=/a"
	if strings.Join(got, " ") != want {
		t.Errorf("StartupEnv = %q, want %q", got, want)
	}
}

func TestZygoteAccepts(t *testing.T) {
	z := &Zygote{Command: []string{"python3", "/work/main.py"}, Dir: "/work", Env: []string{"HOME=/tmp", "PYTHONPATH=/run/brig/python"}}
	base := func() *Request {
		return &Request{Command: []string{"python3", "/work/main.py"}, Dir: "/work",
			Env: []string{"BRIG_TOKEN=secret", "FOO=bar", "HOME=/tmp", "PYTHONPATH=/run/brig/python", "TZ=UTC"}}
	}
	for _, c := range []struct {
		name   string
		change func(*Request)
		want   bool
	}{
		{"same start-up variables", func(*Request) {}, true},
		{"other command", func(r *Request) { r.Command = []string{"python3", "/work/other.py"} }, false},
		{"other dir", func(r *Request) { r.Dir = "/tmp" }, false},
		{"reuse", func(r *Request) { r.Reuse = true }, false},
		{"nproc", func(r *Request) { r.NProc = 8 }, false},
		{"hash seed", func(r *Request) { r.Env = append(r.Env, "PYTHONHASHSEED=0") }, false},
		{"other PYTHONPATH", func(r *Request) { r.Env[3] = "PYTHONPATH=/run/brig/python:/work/lib" }, false},
		{"HOME missing", func(r *Request) { r.Env = append(r.Env[:2], r.Env[3:]...) }, false},
	} {
		req := base()
		c.change(req)
		if got := z.Accepts(req); got != c.want {
			t.Errorf("%s: Accepts = %v, want %v", c.name, got, c.want)
		}
	}
}

func TestZygoteDecodeRefuses(t *testing.T) {
	good := Zygote{Command: []string{"python3", "/work/main.py"}, Dir: "/work", Env: []string{"HOME=/tmp"}, Preload: []string{"json", "urllib.parse"}}
	arg, err := good.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if z, err := DecodeZygote(arg); err != nil || z.Preload[1] != "urllib.parse" {
		t.Fatalf("DecodeZygote(%s) = %+v, %v", arg, z, err)
	}
	many := make([]string, MaxPreload+1)
	for i := range many {
		many[i] = "m"
	}
	for name, bad := range map[string]string{
		"not json":          "{",
		"too large":         `{"command":["python3","/work/main.py"],"dir":"/work","preload":["` + strings.Repeat("a", MaxZygoteBytes) + `"]}`,
		"one-word command":  `{"command":["python3"],"dir":"/work"}`,
		"relative dir":      `{"command":["python3","/work/main.py"],"dir":"work"}`,
		"bad module":        `{"command":["python3","/work/main.py"],"dir":"/work","preload":["os; import x"]}`,
		"long module":       `{"command":["python3","/work/main.py"],"dir":"/work","preload":["` + strings.Repeat("a", MaxModuleName+1) + `"]}`,
		"too many":          `{"command":["python3","/work/main.py"],"dir":"/work","preload":["` + strings.Join(many, `","`) + `"]}`,
		"not start-up":      `{"command":["python3","/work/main.py"],"dir":"/work","env":["BRIG_TOKEN=x"]}`,
		"unsorted env":      `{"command":["python3","/work/main.py"],"dir":"/work","env":["PATH=/bin","HOME=/tmp"]}`,
		"env without value": `{"command":["python3","/work/main.py"],"dir":"/work","env":["HOME"]}`,
	} {
		if _, err := DecodeZygote(bad); err == nil {
			t.Errorf("%s: DecodeZygote accepted it", name)
		}
	}
}
