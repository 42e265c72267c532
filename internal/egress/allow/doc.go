// Package allow holds the pure logic of egress allowlists
// (docs/design.md §12): parsing and normalising a function's or a job's
// `egress` list, matching host names and addresses against it, checking
// that a job's list stays within its function's, and telling public
// addresses from the ones no job may reach.
//
// Entries, one a string:
//
//	api.example.com          the name itself, ports 443 and 80
//	api.example.com:8443     the name, that port only
//	*.example.com            every subdomain at any depth, never example.com itself
//	*.example.com:443
//	203.0.113.7, 203.0.113.7:443, 198.51.100.0/24, 198.51.100.0/24:443  (admin only)
//	2001:db8::1, [2001:db8::1]:443, 2001:db8::/32, [2001:db8::/32]:443    (admin only)
//
// Names are ASCII (internationalised names in punycode), of at least two
// labels, compared without regard to case and with one trailing dot
// dropped. An entry without a port allows 443 and 80, what a browser-like
// client uses. A list holds at most MaxEntries entries of at most
// MaxEntryLen bytes; duplicates are collapsed, and Entries gives the
// sorted normal form for storage.
//
// The common calls, as a dispatcher and a worker's proxy make them:
//
//	fn, err := allow.Parse(function.Egress, isAdmin) // *EntryError, *AdminOnlyError
//	job, err := allow.Parse(spec.Egress, false)
//	if !job.Within(fn) { ... refuse: the job widens its function's list }
//	...
//	if list.AllowsName(sni, 443) && policy.Allowed(resolvedIP) { ... connect }
//
// A list never opens a non-public address: AllowsIP says only whether an
// address entry names ip, and the caller must check every address it
// connects to with Policy.Allowed (Public, plus what the worker's admin
// settings add).
//
// The package imports the standard library only.
package allow
