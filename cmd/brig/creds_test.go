package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/brig-dev/brig/internal/auth"
)

// TestConnFlagsCreds: the credentials a command connects with, from the
// command line, the environment, or brig dev's files.
func TestConnFlagsCreds(t *testing.T) {
	t.Parallel()
	dev := t.TempDir()
	for _, f := range []string{devClientCreds, devAdminCreds} {
		if err := auth.WriteSecret(filepath.Join(dev, "creds", f), []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	devClient, devAdmin := filepath.Join(dev, "creds", devClientCreds), filepath.Join(dev, "creds", devAdminCreds)
	tests := []struct {
		name     string
		cmd      string
		args     []string
		env      map[string]string
		noDev    bool // brig dev has written no creds
		want     string
		wantCA   string
		explicit bool
	}{
		{name: "dev's client creds", cmd: "brig run", want: devClient},
		{name: "dev's admin creds for deploy", cmd: "brig deploy", want: devAdmin},
		{name: "dev's admin creds for status", cmd: "brig status", want: devAdmin},
		{name: "dev wrote none", cmd: "brig run", noDev: true, want: ""},
		{name: "BRIG_CREDS", cmd: "brig run", env: map[string]string{"BRIG_CREDS": "/env.creds"}, want: "/env.creds"},
		{name: "--creds over BRIG_CREDS", cmd: "brig watch", args: []string{"--creds", "/cli.creds"},
			env: map[string]string{"BRIG_CREDS": "/env.creds"}, want: "/cli.creds"},
		{name: "empty BRIG_CREDS is unset", cmd: "brig cancel", env: map[string]string{"BRIG_CREDS": ""}, want: devClient},
		{name: "--server: no dev creds", cmd: "brig run", args: []string{"--server", "nats://x:1"}, want: "", explicit: true},
		{name: "BRIG_SERVER: no dev creds", cmd: "brig deploy", env: map[string]string{"BRIG_SERVER": "nats://x:1"}, want: "", explicit: true},
		{name: "BRIG_SERVER and BRIG_CREDS", cmd: "brig cancel",
			env: map[string]string{"BRIG_SERVER": "nats://x:1", "BRIG_CREDS": "/env.creds"}, want: "/env.creds", explicit: true},
		{name: "BRIG_TLS_CA", cmd: "brig run", env: map[string]string{"BRIG_TLS_CA": "/ca.pem"}, want: devClient, wantCA: "/ca.pem"},
		{name: "--tls-ca over BRIG_TLS_CA", cmd: "brig run", args: []string{"--tls-ca", "/cli.pem"},
			env: map[string]string{"BRIG_TLS_CA": "/ca.pem"}, want: devClient, wantCA: "/cli.pem"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fs := newFlagSet(tt.cmd, io.Discard, io.Discard)
			fs.String("id", "", "") // a job command's flag: never from the environment
			kind := devClientCreds
			if tt.cmd == "brig deploy" || tt.cmd == "brig status" {
				kind = devAdminCreds
			}
			conn := addConnFlags(fs, kind)
			conn.devDir = dev
			if tt.noDev {
				conn.devDir = t.TempDir()
			}
			if err := fs.Parse(tt.args); err != nil {
				t.Fatal(err)
			}
			env := map[string]string{"BRIG_ID": "same-every-time"}
			for k, v := range tt.env {
				env[k] = v
			}
			if err := applyEnv(fs, func(k string) (string, bool) { v, ok := env[k]; return v, ok }); err != nil {
				t.Fatal(err)
			}
			if got := conn.credsFile(); got != tt.want {
				t.Errorf("creds = %q, want %q", got, tt.want)
			}
			if conn.tlsCA != tt.wantCA || conn.explicit != tt.explicit {
				t.Errorf("tls-ca %q, explicit %v; want %q, %v", conn.tlsCA, conn.explicit, tt.wantCA, tt.explicit)
			}
			if id := fs.Lookup("id").Value.String(); id != "" && tt.cmd != "brig status" {
				t.Errorf("%s took its job id %q from BRIG_ID", tt.cmd, id)
			}
		})
	}
}

// TestCredsCommand: brig creds writes a 0600 credential that connects with
// its role's permissions, and refuses what would mint a useless one.
func TestCredsCommand(t *testing.T) {
	t.Parallel()
	url, a := startAuthServer(t)
	out := filepath.Join(t.TempDir(), "sub", "default.creds")
	code, stdout, stderr := runCmd(t, cmdCreds, "--auth-dir", a.Dir(), "--role", "client", "--tenant", "default", "--out", out)
	if code != 0 || stdout != out+"\n" {
		t.Fatalf("exit %d, stdout %q; want 0 and the path (stderr %s)", code, stdout, stderr)
	}
	fi, err := os.Stat(out)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode().Perm())
	}

	violations := make(chan error, 4)
	nc, err := nats.Connect(url, nats.UserCredentials(out),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { violations <- err }))
	if err != nil {
		t.Fatalf("the minted credential does not connect: %v", err)
	}
	defer nc.Close()
	if err := nc.Publish("brig.work.python", []byte("{}")); err != nil {
		t.Fatal(err)
	}
	_ = nc.Flush()
	select {
	case err := <-violations:
		if !strings.Contains(err.Error(), "Permissions Violation") {
			t.Errorf("publish to brig.work: %v, want a permissions violation", err)
		}
	case <-time.After(5 * time.Second):
		t.Error("a tenant's credential may publish Work")
	}
	nc.Close()

	// To stdout: an admin credential, which may use JetStream.
	code, stdout, stderr = runCmd(t, cmdCreds, "--auth-dir", a.Dir(), "--role", "admin")
	if code != 0 || !strings.Contains(stdout, "-----BEGIN NATS USER JWT-----") {
		t.Fatalf("exit %d, stdout %q; want a credential (stderr %s)", code, stdout, stderr)
	}
	path := filepath.Join(t.TempDir(), "admin.creds")
	if err := os.WriteFile(path, []byte(stdout), 0o600); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr = runCmd(t, cmdStatus, "--server", url, "--creds", path, "--json")
	if code != 0 || !strings.Contains(stdout, `"server"`) {
		t.Errorf("brig status with the admin credential: exit %d, stdout %q, stderr %s", code, stdout, stderr)
	}
}

func TestCredsCommandErrors(t *testing.T) {
	t.Parallel()
	dir, _ := newAuthority(t)
	missing := filepath.Join(t.TempDir(), "none")
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no role", []string{"--auth-dir", dir}, 2, "usage: brig creds"},
		{"client without tenant", []string{"--auth-dir", dir, "--role", "client"}, 2, "needs --tenant NAME"},
		{"tenant of admin", []string{"--auth-dir", dir, "--role", "admin", "--tenant", "default"}, 2, "a tenant goes with the client role"},
		{"unknown role", []string{"--auth-dir", dir, "--role", "root"}, 2, `unknown role "root"`},
		{"bad tenant", []string{"--auth-dir", dir, "--role", "client", "--tenant", "A.B"}, 2, "invalid tenant name"},
		{"no authority", []string{"--auth-dir", missing, "--role", "admin"}, 1, "no brig authority"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			code, stdout, stderr := runCmd(t, cmdCreds, tt.args...)
			if code != tt.code || stdout != "" || !strings.Contains(stderr, tt.want) {
				t.Errorf("exit %d, stdout %q, stderr %q; want %d, nothing, %q", code, stdout, stderr, tt.code, tt.want)
			}
		})
	}
	// A missing authority is not created: its credential would be refused
	// by every server.
	if _, err := os.Stat(missing); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("brig creds created %s: %v", missing, err)
	}
}

// TestCredsFromEnvironment: brig creds takes BRIG_AUTH_DIR, and no other
// variable (no t.Parallel: it sets the process environment).
func TestCredsFromEnvironment(t *testing.T) {
	dir, _ := newAuthority(t)
	t.Setenv("BRIG_AUTH_DIR", dir)
	t.Setenv("BRIG_ROLE", "admin")
	code, _, stderr := runCmd(t, cmdCreds)
	if code != 2 || !strings.Contains(stderr, "usage: brig creds") {
		t.Errorf("exit %d, stderr %q; want BRIG_ROLE ignored (usage, 2)", code, stderr)
	}
	if code, stdout, stderr := runCmd(t, cmdCreds, "--role", "worker"); code != 0 || !strings.Contains(stdout, "NATS USER JWT") {
		t.Errorf("exit %d, stdout %q, stderr %q; want a credential of BRIG_AUTH_DIR's authority", code, stdout, stderr)
	}
}

func TestNATSContext(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "nats", "context")
	for _, url := range []string{"nats://127.0.0.1:4222", "nats://127.0.0.1:5222"} {
		path, err := writeNATSContext(dir, url, "/data/brig/creds/admin.creds")
		if err != nil {
			t.Fatal(err)
		}
		if path != filepath.Join(dir, "brig.json") {
			t.Errorf("path %s, want brig.json in %s", path, dir)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		want := `{"description":"brig dev (admin)","url":"` + url + `","creds":"/data/brig/creds/admin.creds"}` + "\n"
		if string(data) != want {
			t.Errorf("context = %s, want %s", data, want)
		}
		if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("context file mode: %v, %v; want 0600", fi.Mode().Perm(), err)
		}
	}
}

// TestNATSContextDir follows the NATS CLI: $XDG_CONFIG_HOME/nats/context,
// else ~/.config/nats/context (no t.Parallel: it sets the environment).
func TestNATSContextDir(t *testing.T) {
	t.Setenv("XDG_CONFIG_HOME", "/cfg")
	if dir, err := natsContextDir(); err != nil || dir != "/cfg/nats/context" {
		t.Errorf("natsContextDir() = %q, %v; want /cfg/nats/context", dir, err)
	}
	t.Setenv("XDG_CONFIG_HOME", "")
	t.Setenv("HOME", "/home/u")
	if dir, err := natsContextDir(); err != nil || dir != "/home/u/.config/nats/context" {
		t.Errorf("natsContextDir() = %q, %v; want /home/u/.config/nats/context", dir, err)
	}
}

// TestNatsRefusesAnonymous: brig nats lets no one in without a credential
// of its authority, and a command without one is told what to pass.
func TestNatsRefusesAnonymous(t *testing.T) {
	t.Parallel()
	authDir := filepath.Join(t.TempDir(), "auth")
	n := startNats(t, "--listen", "127.0.0.1:0", "--data", t.TempDir(), "--auth-dir", authDir, "--log-level", "error")
	if !strings.Contains(n.out.String(), "created authority in "+authDir) {
		t.Errorf("no word of the new authority:\n%s", n.out)
	}
	if nc, err := nats.Connect(n.url); !errors.Is(err, nats.ErrAuthorization) {
		if err == nil {
			nc.Close()
		}
		t.Fatalf("anonymous connection: err = %v, want an authorization violation", err)
	}
	code, _, stderr := runCmd(t, cmdStatus, "--server", n.url)
	if want := "brig status: the server wants credentials: pass --creds FILE (brig dev writes "; code != exitBrig || !strings.Contains(stderr, want) {
		t.Errorf("brig status without creds: exit %d, stderr %q; want %d and %q", code, stderr, exitBrig, want)
	}
	_, other := newAuthority(t)
	foreign := mintCreds(t, other, auth.User{Role: auth.RoleAdmin})
	code, _, stderr = runCmd(t, cmdStatus, "--server", n.url, "--creds", foreign)
	if want := "refused the credentials in " + foreign; code != exitBrig || !strings.Contains(stderr, want) {
		t.Errorf("brig status with another authority's creds: exit %d, stderr %q; want %d and %q", code, stderr, exitBrig, want)
	}
	code, _, stderr = runCmd(t, cmdStatus, "--server", n.url, "--creds", filepath.Join(t.TempDir(), "missing.creds"))
	if code != exitBrig || !strings.Contains(stderr, "brig status: credentials: open ") {
		t.Errorf("brig status with a missing creds file: exit %d, stderr %q", code, stderr)
	}
}

// TestTLS: brig nats serves TLS with --tls-cert/--tls-key; a command that
// trusts the CA (--tls-ca) and holds a credential gets in, one that does
// not trust it is refused and told about --tls-ca.
func TestTLS(t *testing.T) {
	t.Parallel()
	ca, cert, key := writeTLSFiles(t)
	authDir := filepath.Join(t.TempDir(), "auth")
	n := startNats(t, "--listen", "127.0.0.1:0", "--data", t.TempDir(), "--auth-dir", authDir,
		"--tls-cert", cert, "--tls-key", key, "--log-level", "error")
	a, err := auth.Open(authDir)
	if err != nil {
		t.Fatal(err)
	}
	creds := mintCreds(t, a, auth.User{Role: auth.RoleAdmin})
	for _, url := range []string{n.url, strings.Replace(n.url, "127.0.0.1", "localhost", 1)} {
		code, stdout, stderr := runCmd(t, cmdStatus, "--server", url, "--creds", creds, "--tls-ca", ca, "--json")
		if code != 0 || !strings.Contains(stdout, `"server"`) {
			t.Errorf("brig status over TLS at %s: exit %d, stdout %q, stderr %s", url, code, stdout, stderr)
		}
	}

	// The same options through connFlags, and the connection is TLS.
	fs := newFlagSet("brig status", io.Discard, io.Discard)
	conn := addConnFlags(fs, devAdminCreds)
	if err := fs.Parse([]string{"--server", n.url, "--creds", creds, "--tls-ca", ca}); err != nil {
		t.Fatal(err)
	}
	nc, err := conn.connect("brig-test")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := nc.TLSConnectionState(); err != nil {
		t.Errorf("not a TLS connection: %v", err)
	}
	nc.Close()

	code, _, stderr := runCmd(t, cmdStatus, "--server", n.url, "--creds", creds)
	if code != exitBrig || !strings.Contains(stderr, "certificate") || !strings.Contains(stderr, "--tls-ca FILE") {
		t.Errorf("brig status without the CA: exit %d, stderr %q; want %d, a certificate error and --tls-ca", code, stderr, exitBrig)
	}
	if nc, err := nats.Connect(n.url, nats.RootCAs(ca)); !errors.Is(err, nats.ErrAuthorization) {
		if err == nil {
			nc.Close()
		}
		t.Errorf("anonymous TLS connection: err = %v, want an authorization violation", err)
	}
}

func runCmd(t *testing.T, cmd func(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = cmd(t.Context(), args, strings.NewReader(""), &out, &errOut)
	return code, out.String(), errOut.String()
}

// writeTLSFiles writes a throwaway CA and a server certificate it signed,
// for 127.0.0.1 and localhost, as PEM files.
func writeTLSFiles(t *testing.T) (caFile, certFile, keyFile string) {
	t.Helper()
	dir := t.TempDir()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "brig test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	srvKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	srvTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "localhost"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	srvDER, err := x509.CreateCertificate(rand.Reader, srvTmpl, caCert, &srvKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(srvKey)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name, typ string, der []byte) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	return write("ca.pem", "CERTIFICATE", caDER), write("server.pem", "CERTIFICATE", srvDER), write("server-key.pem", "EC PRIVATE KEY", keyDER)
}
