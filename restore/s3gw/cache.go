package s3gw

import (
	"os"
	"sync"
)

// lru keeps rebuilt folders (states, history versions) on disk, least recently used out
// first, within a count and a byte budget. Each key is built once even when many
// requests ask for it together; a failed build is not kept, so the next request retries.
type lru struct {
	mu       sync.Mutex
	max      int
	maxBytes int64
	total    int64
	tick     uint64
	m        map[string]*entry
}

// entry is one cached build. refs counts the requests using it: an evicted entry's
// folder is removed when the last of them lets go.
type entry struct {
	key     string
	ready   chan struct{}
	val     any
	dir     string
	bytes   int64
	err     error
	refs    int
	used    uint64
	evicted bool
}

func newLRU(max int, maxBytes int64) *lru {
	return &lru{max: max, maxBytes: maxBytes, m: map[string]*entry{}}
}

// acquire returns the entry for key, building it with build when absent. The caller
// calls release when done with it.
func (c *lru) acquire(key string, build func() (val any, dir string, bytes int64, err error)) (*entry, error) {
	c.mu.Lock()
	e := c.m[key]
	if e != nil {
		e.refs++
		c.mu.Unlock()
		<-e.ready
		c.mu.Lock()
		defer c.mu.Unlock()
		if e.err != nil {
			e.refs--
			return nil, e.err
		}
		c.tick++
		e.used = c.tick
		return e, nil
	}
	e = &entry{key: key, ready: make(chan struct{}), refs: 1}
	c.m[key] = e
	c.mu.Unlock()

	val, dir, n, err := build()

	c.mu.Lock()
	e.val, e.dir, e.bytes, e.err = val, dir, n, err
	close(e.ready)
	if err != nil {
		delete(c.m, key)
		e.refs--
		c.mu.Unlock()
		return nil, err
	}
	c.total += n
	c.tick++
	e.used = c.tick
	gone := c.evict(e)
	c.mu.Unlock()
	removeAll(gone)
	return e, nil
}

// release lets go of an entry from acquire.
func (c *lru) release(e *entry) {
	c.mu.Lock()
	e.refs--
	var gone []string
	if e.evicted && e.refs == 0 && e.dir != "" {
		gone = append(gone, e.dir)
	}
	c.mu.Unlock()
	removeAll(gone)
}

// evict drops least recently used entries (never keep) until the budgets hold, and
// returns the folders that can be removed now.
func (c *lru) evict(keep *entry) []string {
	var gone []string
	for len(c.m) > c.max || c.total > c.maxBytes {
		var victim *entry
		for _, e := range c.m {
			if e == keep || !isClosed(e.ready) {
				continue // the entry just built, or one still being built
			}
			if victim == nil || e.used < victim.used {
				victim = e
			}
		}
		if victim == nil {
			break
		}
		delete(c.m, victim.key)
		c.total -= victim.bytes
		victim.evicted = true
		if victim.refs == 0 && victim.dir != "" {
			gone = append(gone, victim.dir)
		}
	}
	return gone
}

// len is how many entries are kept (built or being built).
func (c *lru) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m)
}

func isClosed(ch chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

func removeAll(dirs []string) {
	for _, d := range dirs {
		_ = os.RemoveAll(d)
	}
}
