package proxy

import (
	"encoding/binary"
	"net/netip"
	"sync"
	"sync/atomic"

	"github.com/brig-dev/brig/internal/egress/wire"
)

// syntheticSize is how many addresses wire.Synthetic holds; the first and
// the last are never handed out.
var syntheticSize = uint32(1) << (32 - wire.Synthetic.Bits())

// syntheticSeq hands out synthetic addresses in order, for one Listener
// across its bindings, so that an address comes back only after
// syntheticSize-2 others.
type syntheticSeq struct{ n atomic.Uint32 }

func (s *syntheticSeq) next() netip.Addr {
	k := s.n.Add(1) - 1
	base := wire.Synthetic.Addr().As4()
	v := binary.BigEndian.Uint32(base[:]) + 1 + k%(syntheticSize-2)
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], v)
	return netip.AddrFrom4(b)
}

// names is one binding's table of synthetic addresses: one per name,
// never taken back while the binding lasts.
type names struct {
	seq    *syntheticSeq
	mu     sync.Mutex
	byName map[string]netip.Addr
	byAddr map[netip.Addr]string
}

func newNames(seq *syntheticSeq) *names {
	return &names{seq: seq, byName: map[string]netip.Addr{}, byAddr: map[netip.Addr]string{}}
}

// addr returns name's address, giving it one if it has none; false when
// the binding already has MaxNames names.
func (n *names) addr(name string) (netip.Addr, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if a, ok := n.byName[name]; ok {
		return a, true
	}
	if len(n.byName) >= MaxNames {
		return netip.Addr{}, false
	}
	a := n.seq.next()
	n.byName[name], n.byAddr[a] = a, name
	return a, true
}

// name returns the name a was handed out for.
func (n *names) name(a netip.Addr) (string, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	name, ok := n.byAddr[a]
	return name, ok
}
