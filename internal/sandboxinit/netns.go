//go:build linux

package sandboxinit

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// socketTables are the /proc/net tables of the sandbox's network namespace
// that list sockets, with the column holding each socket's inode. A socket
// a job leaves there outlives it: a closed TCP connection stays in
// TIME_WAIT for a minute, its ports (which the job chose) readable by
// anyone in the namespace, so the next job of a reused sandbox could read
// them.
var socketTables = []struct {
	file     string
	inodeCol int
}{
	{"tcp", 9}, {"tcp6", 9},
	{"udp", 9}, {"udp6", 9},
	{"udplite", 9}, {"udplite6", 9},
	{"raw", 9}, {"raw6", 9},
	{"icmp", 9}, {"icmp6", 9}, // ping sockets: Docker allows them to every gid
	{"unix", 6},
}

// netSocket is one row of a socket table.
type netSocket struct {
	table string
	inode uint64 // 0 for sockets no process holds (TIME_WAIT, for one)
	state string // TCP's st column, hex ("06" is TIME_WAIT); unix: st
	path  string // unix: the name it is bound at, or its listener's
}

// socketSet is the inodes of sockets a wipe leaves alone: those the
// sandbox held before any job ran (the init's own; on a Docker network with
// an embedded DNS server, dockerd's listeners at 127.0.0.11).
type socketSet map[uint64]bool

// readSocketSet reads the inodes of every socket in the namespace's tables
// under procNet (/proc/net), plus those this process has open (its fds
// under procFD, /proc/self/fd), so that the init's own never count as
// left over.
func readSocketSet(procNet, procFD string) (socketSet, error) {
	set := socketSet{}
	socks, err := readSockets(procNet)
	if err != nil {
		return nil, err
	}
	for _, s := range socks {
		if s.inode != 0 {
			set[s.inode] = true
		}
	}
	addOwnSockets(set, procFD)
	return set, nil
}

// addOwnSockets adds the inodes of the sockets open in procFD.
func addOwnSockets(set socketSet, procFD string) {
	entries, _ := os.ReadDir(procFD)
	for _, e := range entries {
		link, err := os.Readlink(filepath.Join(procFD, e.Name()))
		if err != nil {
			continue
		}
		if ino, ok := strings.CutPrefix(link, "socket:["); ok {
			if n, err := strconv.ParseUint(strings.TrimSuffix(ino, "]"), 10, 64); err == nil {
				set[n] = true
			}
		}
	}
}

// readSockets reads every socket table under procNet; a table that does not
// exist (gVisor lacks some, a kernel without IPv6 the v6 ones) is skipped.
func readSockets(procNet string) ([]netSocket, error) {
	var all []netSocket
	var errs []error
	for _, t := range socketTables {
		data, err := os.ReadFile(filepath.Join(procNet, t.file))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("read %s: %w", filepath.Join(procNet, t.file), err))
			continue
		}
		socks, err := parseSocketTable(t.file, string(data), t.inodeCol)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", filepath.Join(procNet, t.file), err))
		}
		all = append(all, socks...)
	}
	return all, errors.Join(errs...)
}

// parseSocketTable parses a /proc/net socket table: a header line, then one
// socket a line, its inode in column inodeCol (counting from 0). A row too
// short to hold the inode is an error: a table this code does not
// understand must not pass as empty.
func parseSocketTable(table, data string, inodeCol int) ([]netSocket, error) {
	var socks []netSocket
	sc := bufio.NewScanner(strings.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for first := true; sc.Scan(); first = false {
		line := strings.TrimSpace(sc.Text())
		if first || line == "" {
			continue // header
		}
		f := strings.Fields(line)
		if len(f) <= inodeCol {
			return socks, fmt.Errorf("unreadable row %q", line)
		}
		ino, err := strconv.ParseUint(f[inodeCol], 10, 64)
		if err != nil {
			return socks, fmt.Errorf("bad inode %q", f[inodeCol])
		}
		s := netSocket{table: table, inode: ino}
		if table == "unix" {
			if len(f) <= inodeCol+1 {
				continue // unnamed: it carries nothing the job chose
			}
			// The path is all the rest, spaces included, exactly as the
			// kernel printed it: "P x" must not pass for the gateway's P.
			s.state, s.path = f[5], afterField(sc.Text(), inodeCol)
		} else {
			s.state = f[3]
		}
		socks = append(socks, s)
	}
	return socks, sc.Err()
}

// afterField returns what follows field n (from 0) of line and the one
// space the kernel prints after it.
func afterField(line string, n int) string {
	i := 0
	for range n + 1 {
		for i < len(line) && line[i] == ' ' {
			i++
		}
		for i < len(line) && line[i] != ' ' {
			i++
		}
	}
	if i < len(line) {
		i++
	}
	return line[i:]
}

// leftSockets returns the sockets of socks that are not in keep. A socket
// with inode 0 belongs to no process and is never kept.
func leftSockets(socks []netSocket, keep socketSet) []netSocket {
	var left []netSocket
	for _, s := range socks {
		if s.inode == 0 || !keep[s.inode] {
			left = append(left, s)
		}
	}
	return left
}

// checkSockets fails when the namespace under procNet holds a socket that
// is neither in keep nor open in this process (procFD): something a job
// left, which would reach the next job. It cannot be removed (a TIME_WAIT
// socket belongs to no one), so the sandbox must not be reused. The error
// counts what was left per table and TCP state, not the addresses, which
// the job chose.
func checkSockets(procNet, procFD string, keep socketSet, gatewayPath string) error {
	socks, err := readSockets(procNet)
	if err != nil {
		return fmt.Errorf("wipe: %w", err)
	}
	own := socketSet{}
	for ino := range keep {
		own[ino] = true
	}
	addOwnSockets(own, procFD)
	left := leftSockets(gatewaySocketsOut(socks, gatewayPath), own)
	if len(left) == 0 {
		return nil
	}
	return fmt.Errorf("wipe: network namespace holds %d socket(s) left by a job: %s", len(left), describeSockets(left))
}

// gatewaySocketsOut drops the gateway's own ends of the job's connections:
// the kernel lists them in the namespace of the side that connected, under
// the gateway socket's host path (gatewayPath), until the worker resets the
// gateway, which it does only after this wipe. Their name is brig's.
func gatewaySocketsOut(socks []netSocket, gatewayPath string) []netSocket {
	if gatewayPath == "" {
		return socks
	}
	kept := socks[:0:0]
	for _, s := range socks {
		if s.table != "unix" || s.path != gatewayPath {
			kept = append(kept, s)
		}
	}
	return kept
}

// checkSockets fails when the sandbox's network namespace holds a socket
// that was not there before the first job (see the function).
// gatewayPath is the host path of the job's gateway socket.
func (b *baseline) checkSockets(gatewayPath string) error {
	if b.socketsErr != nil {
		return fmt.Errorf("wipe: sockets before the first job: %w", b.socketsErr)
	}
	return checkSockets("/proc/net", "/proc/self/fd", b.sockets, gatewayPath)
}

// describeSockets summarises sockets as "tcp TIME_WAIT ×3, unix ×1".
func describeSockets(socks []netSocket) string {
	count := map[string]int{}
	for _, s := range socks {
		k := s.table
		if strings.HasPrefix(s.table, "tcp") {
			k += " " + tcpStateName(s.state)
		}
		count[k]++
	}
	keys := make([]string, 0, len(count))
	for k := range count {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s ×%d", k, count[k])
	}
	return strings.Join(parts, ", ")
}

// tcpStateName names a TCP state as /proc/net/tcp writes it (hex).
func tcpStateName(hex string) string {
	names := map[string]string{
		"01": "ESTABLISHED", "02": "SYN_SENT", "03": "SYN_RECV", "04": "FIN_WAIT1",
		"05": "FIN_WAIT2", "06": "TIME_WAIT", "07": "CLOSE", "08": "CLOSE_WAIT",
		"09": "LAST_ACK", "0A": "LISTEN", "0B": "CLOSING", "0C": "NEW_SYN_RECV",
	}
	if n, ok := names[strings.ToUpper(hex)]; ok {
		return n
	}
	return "state " + hex
}
