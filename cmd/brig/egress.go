package main

import (
	"flag"
	"fmt"
	"net/netip"
	"strings"

	"github.com/brig-dev/brig/internal/egress/allow"
)

// privateRangesFlag collects repeated --egress-private CIDR: private
// ranges an admin lets jobs with an egress list reach through this
// worker's filtering proxy (docs/design.md §12). Loopback, link-local
// (cloud metadata) and multicast can never be opened.
type privateRangesFlag struct{ ranges *[]netip.Prefix }

func (p privateRangesFlag) String() string {
	if p.ranges == nil {
		return ""
	}
	parts := make([]string, len(*p.ranges))
	for i, r := range *p.ranges {
		parts[i] = r.String()
	}
	return strings.Join(parts, ",")
}

func (p privateRangesFlag) Set(v string) error {
	r, err := netip.ParsePrefix(v)
	if err != nil {
		return fmt.Errorf("want a CIDR such as 10.1.0.0/16: %w", err)
	}
	add := append(append([]netip.Prefix(nil), *p.ranges...), r)
	if err := (allow.Policy{Private: add}).Validate(); err != nil {
		return err
	}
	*p.ranges = add
	return nil
}

// addEgressPrivateFlag adds --egress-private to fs.
func addEgressPrivateFlag(fs *flag.FlagSet) *[]netip.Prefix {
	ranges := new([]netip.Prefix)
	fs.Var(privateRangesFlag{ranges}, "egress-private", "`CIDR` of a private range that jobs with an egress list may reach when a listed name resolves into it (repeatable; never loopback, link-local or multicast)")
	return ranges
}
