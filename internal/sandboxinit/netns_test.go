//go:build linux

package sandboxinit

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// A /proc/net/tcp as a job leaves it: the ports 1024+secret bytes, closed
// first, in TIME_WAIT (inode 0), beside a listener the init had before the
// first job (inode 4242).
const sampleTCP = `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:0435 00000000:0000 0A 00000000:00000000 00:00000000 00000000 65534        0 4242 1 0000000000000000 100 0 0 10 0
   1: 0100007F:04D3 0100007F:9C40 06 00000000:00000000 03:00001770 00000000     0        0 0 3 0000000000000000
   2: 0100007F:0448 0100007F:9C42 06 00000000:00000000 03:00001770 00000000     0        0 0 3 0000000000000000
`

const sampleUnix = `Num       RefCount Protocol Flags    Type St Inode Path
0000000000000000: 00000002 00000000 00010000 0001 01 777 /tmp/.s
0000000000000000: 00000003 00000000 00000000 0001 03 778 @secret
0000000000000000: 00000003 00000000 00000000 0001 03 779
`

func TestParseSocketTable(t *testing.T) {
	socks, err := parseSocketTable("tcp", sampleTCP, 9)
	if err != nil {
		t.Fatal(err)
	}
	if len(socks) != 3 {
		t.Fatalf("got %d sockets, want 3: %+v", len(socks), socks)
	}
	if socks[0].inode != 4242 || socks[0].state != "0A" || socks[1].inode != 0 || socks[1].state != "06" {
		t.Errorf("parsed %+v", socks)
	}
	left := leftSockets(socks, socketSet{4242: true, 0: true})
	if len(left) != 2 {
		t.Errorf("left %+v, want the two TIME_WAIT rows (inode 0 is never kept)", left)
	}
	if got := describeSockets(left); got != "tcp TIME_WAIT ×2" {
		t.Errorf("describe: %q", got)
	}

	u, err := parseSocketTable("unix", sampleUnix, 6)
	if err != nil || len(u) != 2 || u[0].inode != 777 || u[1].inode != 778 {
		t.Errorf("unix: %+v, %v; want the two named sockets, not the unnamed one (a gateway connection)", u, err)
	}
	// Header only: nothing there.
	if s, err := parseSocketTable("udp", strings.SplitAfter(sampleTCP, "\n")[0], 9); err != nil || len(s) != 0 {
		t.Errorf("header only: %+v, %v", s, err)
	}
	// A row this parser cannot read must not pass as an empty table.
	for _, bad := range []string{"h\n 0: 0100007F:0435\n", "h\n 0: a b c d e f g h i notanumber\n"} {
		if _, err := parseSocketTable("tcp", bad, 9); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

// TestCheckSockets: sockets present before the first job pass, any other
// fails the wipe naming the table; missing tables are skipped.
func TestCheckSockets(t *testing.T) {
	dir := t.TempDir()
	write := func(name, data string) { must(t, os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644)) }
	header := strings.SplitAfter(sampleTCP, "\n")[0]
	write("tcp", strings.Join(strings.SplitAfter(sampleTCP, "\n")[:2], ""))
	write("udp6", header)
	write("unix", strings.SplitAfter(sampleUnix, "\n")[0])
	noFD := filepath.Join(dir, "nofd")
	const gw = "/var/lib/brig/gw/0123abcd.sock"

	keep, err := readSocketSet(dir, noFD)
	if err != nil || !keep[4242] || len(keep) != 1 {
		t.Fatalf("baseline: %v, %v", keep, err)
	}
	if err := checkSockets(dir, noFD, keep, gw); err != nil {
		t.Errorf("nothing left: %v", err)
	}

	write("tcp", sampleTCP)
	write("unix", sampleUnix)
	err = checkSockets(dir, noFD, keep, gw)
	if err == nil {
		t.Fatal("TIME_WAIT and unix sockets left: no error")
	}
	for _, want := range []string{"4 socket(s)", "tcp TIME_WAIT ×2", "unix ×2"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "04D3") {
		t.Errorf("error names the job's ports: %q", err)
	}

	// The gateway's ends of the job's connections (named after its host
	// path, inode 0 before accept) are brig's and pass.
	write("tcp", header)
	write("unix", strings.SplitAfter(sampleUnix, "\n")[0]+
		"0000000000000000: 00000003 00000000 00000000 0001 02 0 "+gw+"\n"+
		"0000000000000000: 00000003 00000000 00000000 0001 03 9001 "+gw+"\n")
	if err := checkSockets(dir, noFD, keep, gw); err != nil {
		t.Errorf("only the gateway's ends left: %v", err)
	}
	if err := checkSockets(dir, noFD, keep, "/other.sock"); err == nil {
		t.Error("named sockets of another path passed")
	}
	// A name that only starts like the gateway's is the job's.
	for _, name := range []string{gw + " S-D", gw + " ", " " + gw, gw + "x"} {
		write("unix", strings.SplitAfter(sampleUnix, "\n")[0]+
			"0000000000000000: 00000003 00000000 00000000 0002 01 9002 "+name+"\n")
		if err := checkSockets(dir, noFD, keep, gw); err == nil {
			t.Errorf("a socket named %q passed for the gateway's", name)
		}
	}

	write("unix", "Num RefCount\n0000: bad\n")
	if err := checkSockets(dir, noFD, keep, gw); err == nil || !strings.Contains(err.Error(), "unix") {
		t.Errorf("unreadable table: %v", err)
	}
}

// TestOwnSockets: a socket this process has open is its own; a pipe is no
// socket.
func TestOwnSockets(t *testing.T) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	must(t, err)
	defer unix.Close(fds[0])
	defer unix.Close(fds[1])
	r, w, err := os.Pipe()
	must(t, err)
	defer r.Close()
	defer w.Close()
	var st2 unix.Stat_t
	must(t, unix.Fstat(int(r.Fd()), &st2))
	set := socketSet{}
	addOwnSockets(set, "/proc/self/fd")
	var sock unix.Stat_t
	must(t, unix.Fstat(fds[0], &sock))
	if !set[sock.Ino] {
		t.Errorf("own socket %d not found in %v", sock.Ino, set)
	}
	if set[st2.Ino] {
		t.Errorf("a pipe counted as a socket")
	}
}
