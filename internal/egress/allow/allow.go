package allow

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

const (
	// MaxEntries is the most entries one list may have.
	MaxEntries = 64
	// MaxEntryLen is the longest entry, in bytes: "*." before a name of
	// 253 and ":65535" after it.
	MaxEntryLen = 261
	// maxNameLen is the longest host name (RFC 1035, without the root dot).
	maxNameLen = 253
)

// defaultPorts are the ports of an entry that names none: HTTPS and HTTP.
var defaultPorts = []int{443, 80}

// EntryError is an entry Parse rejects. Index is its position in the list
// as given.
type EntryError struct {
	Index  int
	Entry  string
	Reason string
}

func (e *EntryError) Error() string {
	return fmt.Sprintf("egress[%d] %q: %s", e.Index, e.Entry, e.Reason)
}

// AdminOnlyError is an IP address or CIDR entry in a list parsed without
// admin rights: only admins may name addresses.
type AdminOnlyError struct {
	Index int
	Entry string
}

func (e *AdminOnlyError) Error() string {
	return fmt.Sprintf("egress[%d] %q: IP address and CIDR entries are for admins only; name the host instead", e.Index, e.Entry)
}

// entry is one normalised entry. Exactly one of name and prefix is set.
type entry struct {
	name     string       // lower case, no trailing dot; the suffix of a wildcard
	wildcard bool         // "*." + name: every subdomain of name, at any depth
	prefix   netip.Prefix // masked; a single address is a /32 or /128
	port     int          // 0: defaultPorts
}

// List is a parsed egress allowlist. Its zero value and nil allow nothing.
type List struct {
	entries []entry // sorted by String, unique
}

// Parse checks and normalises an egress list (docs/design.md §12). admin
// allows IP address and CIDR entries. Duplicates, after normalisation, are
// collapsed. Errors are *EntryError or *AdminOnlyError.
func Parse(entries []string, admin bool) (*List, error) {
	if len(entries) > MaxEntries {
		return nil, &EntryError{Index: MaxEntries, Entry: entries[MaxEntries], Reason: fmt.Sprintf("more than %d entries", MaxEntries)}
	}
	l := &List{}
	seen := map[string]bool{}
	for i, s := range entries {
		e, isIP, reason := parseEntry(s)
		switch {
		case isIP && !admin:
			return nil, &AdminOnlyError{Index: i, Entry: s}
		case reason != "":
			return nil, &EntryError{Index: i, Entry: s, Reason: reason}
		}
		if k := e.String(); !seen[k] {
			seen[k] = true
			l.entries = append(l.entries, e)
		}
	}
	slices.SortFunc(l.entries, func(a, b entry) int { return strings.Compare(a.String(), b.String()) })
	return l, nil
}

// parseEntry parses one entry. isIP is true when s is written as an
// address or CIDR, valid or not; reason is why s is invalid, or "".
func parseEntry(s string) (e entry, isIP bool, reason string) {
	switch {
	case s == "":
		return e, false, "empty entry"
	case len(s) > MaxEntryLen:
		return e, false, fmt.Sprintf("longer than %d bytes", MaxEntryLen)
	case strings.HasPrefix(s, "["):
		return parseBracketed(s)
	case strings.Contains(s, "/"):
		return parseBareCIDR(s)
	}
	if _, err := netip.ParseAddr(s); err == nil {
		// An IPv4 address, or a bare IPv6 address (which takes no port).
		e.prefix, reason = parsePrefix(s)
		return e, true, reason
	}
	if strings.Count(s, ":") > 1 {
		return e, false, "more than one \":\" (write an IPv6 address with a port as [v6]:port)"
	}
	host, port, reason := splitPort(s)
	if reason != "" {
		return e, false, reason
	}
	e.port = port
	if _, err := netip.ParseAddr(host); err == nil {
		e.prefix, reason = parsePrefix(host)
		return e, true, reason
	}
	if looksLikeIP(host) {
		return e, false, "looks like an IP address but is not one in dotted-quad form"
	}
	if rest, ok := strings.CutPrefix(host, "*."); ok {
		e.wildcard = true
		host = rest
	}
	if e.wildcard && !strings.Contains(strings.TrimSuffix(host, "."), ".") {
		return e, false, "a wildcard needs at least two labels after \"*.\" (*.example.com, not *.com)"
	}
	e.name, reason = normaliseName(host)
	return e, false, reason
}

// parseBracketed parses "[v6]", "[v6]:port", "[v6/n]" and "[v6/n]:port".
func parseBracketed(s string) (e entry, isIP bool, reason string) {
	end := strings.IndexByte(s, ']')
	if end < 0 {
		return e, true, "missing \"]\""
	}
	e.prefix, reason = parsePrefix(s[1:end])
	if reason != "" {
		return e, true, reason
	}
	if !e.prefix.Addr().Is6() {
		return e, true, "brackets are for IPv6 only; write IPv4 as a.b.c.d[/n][:port]"
	}
	if rest := s[end+1:]; rest != "" {
		if !strings.HasPrefix(rest, ":") {
			return e, true, "unexpected text after \"]\""
		}
		e.port, reason = parsePort(rest[1:])
	}
	return e, true, reason
}

// parseBareCIDR parses "a.b.c.d/n", "a.b.c.d/n:port" and "v6/n" (an IPv6
// CIDR with a port is written in brackets).
func parseBareCIDR(s string) (e entry, isIP bool, reason string) {
	slash := strings.IndexByte(s, '/')
	if _, err := netip.ParseAddr(s[:slash]); err != nil {
		return e, false, "\"/\" is only for CIDRs (a.b.c.d/n, v6/n)"
	}
	if strings.Contains(s[:slash], ":") {
		e.prefix, reason = parsePrefix(s)
		return e, true, reason
	}
	cidr := s
	if i := strings.IndexByte(s, ':'); i > slash {
		cidr = s[:i]
		if e.port, reason = parsePort(s[i+1:]); reason != "" {
			return e, true, reason
		}
	}
	e.prefix, reason = parsePrefix(cidr)
	return e, true, reason
}

// parsePrefix parses an address or CIDR into a canonical prefix.
func parsePrefix(s string) (netip.Prefix, string) {
	var p netip.Prefix
	if strings.Contains(s, "/") {
		var err error
		if p, err = netip.ParsePrefix(s); err != nil {
			return p, "not a valid CIDR (a.b.c.d/n or v6/n)"
		}
	} else {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return p, "not a valid IP address"
		}
		if a.Zone() != "" {
			return p, "an address with a zone (%" + a.Zone() + ") is local to one host"
		}
		p = netip.PrefixFrom(a, a.BitLen())
	}
	switch {
	case p.Addr().Is4In6():
		return p, "an IPv4-mapped IPv6 address: write the IPv4 address"
	case p.Masked() != p:
		return p, fmt.Sprintf("host bits set: did you mean %s?", p.Masked())
	}
	return p, ""
}

// splitPort splits "host:port"; without a colon the port is 0 (defaults).
func splitPort(s string) (host string, port int, reason string) {
	host, ps, found := strings.Cut(s, ":")
	if !found {
		return host, 0, ""
	}
	port, reason = parsePort(ps)
	return host, port, reason
}

// dnsPort is DNS's port, which no entry may name: inside the sandbox it is
// brig's DNS (docs/design.md §12.1), and queries are never forwarded.
const dnsPort = 53

// parsePort accepts 1-65535 but 53 in plain decimal digits.
func parsePort(s string) (int, string) {
	if s == "" || len(s) > 5 || strings.Trim(s, "0123456789") != "" {
		return 0, "port must be a number from 1 to 65535"
	}
	n, _ := strconv.Atoi(s)
	if n < 1 || n > 65535 {
		return 0, "port must be a number from 1 to 65535"
	}
	if n == dnsPort {
		return 0, "port 53 is the sandbox's own DNS, which brig answers; other DNS servers are never reached"
	}
	return n, ""
}

// normaliseName lowercases name, drops one trailing dot and checks it is
// an ASCII host name of at least two labels whose last label is not
// numeric.
func normaliseName(name string) (string, string) {
	// Lower case by hand, ASCII only: strings.ToLower would turn the
	// Kelvin sign U+212A into a plain "k" and let a non-ASCII name pass.
	b := []byte(strings.TrimSuffix(name, "."))
	for i, c := range b {
		switch {
		case c >= 0x80:
			return "", "non-ASCII host name: give an internationalised name in punycode (xn--...)"
		case 'A' <= c && c <= 'Z':
			b[i] = c + 'a' - 'A'
		}
	}
	name = string(b)
	switch {
	case name == "":
		return "", "empty host name"
	case len(name) > maxNameLen:
		return "", fmt.Sprintf("host name longer than %d bytes", maxNameLen)
	}
	labels := strings.Split(name, ".")
	for _, l := range labels {
		if reason := checkLabel(l); reason != "" {
			return "", reason
		}
	}
	switch {
	case len(labels) < 2:
		return "", "a single-label name (such as localhost) resolves through local search domains; give a fully qualified name"
	case looksLikeIP(name):
		return "", "looks like an IP address"
	}
	return name, ""
}

func checkLabel(l string) string {
	switch {
	case l == "":
		return "empty label in host name"
	case len(l) > 63:
		return "label longer than 63 bytes"
	case l[0] == '-' || l[len(l)-1] == '-':
		return fmt.Sprintf("label %q starts or ends with \"-\"", l)
	}
	for i := 0; i < len(l); i++ {
		c := l[i]
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '-' {
			return fmt.Sprintf("character %q not allowed in a host name (a-z, 0-9, -)", c)
		}
	}
	return ""
}

// looksLikeIP reports whether a resolver might take name for an address:
// its last label is decimal or 0x-hex, as inet_aton reads 10.1 or 0x7f.1.
func looksLikeIP(name string) bool {
	name = strings.TrimSuffix(name, ".")
	last := name[strings.LastIndexByte(name, '.')+1:]
	if len(last) >= 2 && last[0] == '0' && (last[1] == 'x' || last[1] == 'X') {
		return strings.Trim(last[2:], "0123456789abcdefABCDEF") == ""
	}
	return last != "" && strings.Trim(last, "0123456789") == ""
}

// String is the entry's normalised form, which Parse reads back.
func (e entry) String() string {
	var s string
	switch {
	case e.prefix.IsValid():
		s = e.prefix.String()
		if e.prefix.IsSingleIP() {
			s = e.prefix.Addr().String()
		}
		if e.prefix.Addr().Is6() && e.port != 0 {
			s = "[" + s + "]"
		}
	case e.wildcard:
		s = "*." + e.name
	default:
		s = e.name
	}
	if e.port != 0 {
		s += ":" + strconv.Itoa(e.port)
	}
	return s
}

// allowsPort reports whether the entry covers port.
func (e entry) allowsPort(port int) bool {
	if e.port == 0 {
		return slices.Contains(defaultPorts, port)
	}
	return e.port == port
}

// ports are the ports the entry covers.
func (e entry) ports() []int {
	if e.port == 0 {
		return defaultPorts
	}
	return []int{e.port}
}

// Ports are the ports the list allows for any entry, ascending.
func (l *List) Ports() []int {
	if l == nil {
		return nil
	}
	var ps []int
	for _, e := range l.entries {
		for _, p := range e.ports() {
			if !slices.Contains(ps, p) {
				ps = append(ps, p)
			}
		}
	}
	slices.Sort(ps)
	return ps
}

// coversName reports whether the entry matches a normalised host name.
func (e entry) coversName(name string) bool {
	if e.wildcard {
		return strings.HasSuffix(name, "."+e.name)
	}
	return e.name != "" && e.name == name
}

// coversEntry reports whether every host c matches, e matches too (ports
// aside).
func (e entry) coversEntry(c entry) bool {
	switch {
	case e.prefix.IsValid() || c.prefix.IsValid():
		return e.prefix.IsValid() && c.prefix.IsValid() &&
			e.prefix.Bits() <= c.prefix.Bits() && e.prefix.Contains(c.prefix.Addr())
	case c.wildcard:
		return e.wildcard && (c.name == e.name || strings.HasSuffix(c.name, "."+e.name))
	}
	return e.coversName(c.name)
}

// AllowsName reports whether a connection to host:port is on the list.
// host is compared without regard to case and may end in one dot. An
// exact entry matches only itself; *.example.com matches every subdomain
// of example.com at any depth, never example.com itself. A host that is
// an IP literal, or not a valid host name, matches nothing.
func (l *List) AllowsName(host string, port int) bool {
	if l == nil || port < 1 || port > 65535 {
		return false
	}
	name, reason := normaliseName(host)
	if reason != "" {
		return false
	}
	for _, e := range l.entries {
		if e.coversName(name) && e.allowsPort(port) {
			return true
		}
	}
	return false
}

// AllowsIP reports whether an IP address or CIDR entry covers ip:port.
// Host name entries never match an address. The list only widens what a
// job names: the caller must still check the address with a Policy.
func (l *List) AllowsIP(ip netip.Addr, port int) bool {
	if l == nil || !ip.IsValid() || ip.Zone() != "" || port < 1 || port > 65535 {
		return false
	}
	ip = ip.Unmap()
	for _, e := range l.entries {
		if e.prefix.IsValid() && e.prefix.Contains(ip) && e.allowsPort(port) {
			return true
		}
	}
	return false
}

// Within reports whether parent allows everything l allows: a job's list
// may narrow its function's, never widen it. Each entry of l, on each of
// its ports, must be covered by one entry of parent: *.a.com covers
// x.a.com and *.x.a.com, an exact entry never covers a wildcard, and a
// CIDR covers the addresses and narrower CIDRs inside it.
func (l *List) Within(parent *List) bool {
	if l == nil {
		return true
	}
	if parent == nil {
		return len(l.entries) == 0
	}
	for _, c := range l.entries {
		for _, port := range c.ports() {
			if !slices.ContainsFunc(parent.entries, func(p entry) bool { return p.coversEntry(c) && p.allowsPort(port) }) {
				return false
			}
		}
	}
	return true
}

// Entries returns the normalised entries, sorted, for storage; Parse reads
// them back to an equal list.
func (l *List) Entries() []string {
	if l == nil {
		return nil
	}
	out := make([]string, len(l.entries))
	for i, e := range l.entries {
		out[i] = e.String()
	}
	return out
}

// Len is the number of entries after duplicates were collapsed.
func (l *List) Len() int {
	if l == nil {
		return 0
	}
	return len(l.entries)
}

// String is Entries joined by commas (no entry contains one).
func (l *List) String() string { return strings.Join(l.Entries(), ",") }
