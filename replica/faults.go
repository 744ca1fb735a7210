package replica

import "sync"

// netFaults cuts links between replicas in tests: a message from one
// replica to another is dropped while the link is cut. It stands in for a
// partition of the network, including one-way ones.
type netFaults struct {
	mu  sync.Mutex
	cut map[[2]uint64]bool // {from, to}
}

// cutLink drops messages from → to (one way).
func (f *netFaults) cutLink(from, to uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.cut == nil {
		f.cut = make(map[[2]uint64]bool)
	}
	f.cut[[2]uint64{from, to}] = true
}

// isolate cuts every link to and from id, among ids.
func (f *netFaults) isolate(id uint64, ids []uint64) {
	for _, o := range ids {
		if o != id {
			f.cutLink(id, o)
			f.cutLink(o, id)
		}
	}
}

// heal restores every link.
func (f *netFaults) heal() {
	f.mu.Lock()
	defer f.mu.Unlock()
	clear(f.cut)
}

func (f *netFaults) blocked(from, to uint64) bool {
	if f == nil {
		return false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.cut[[2]uint64{from, to}]
}
