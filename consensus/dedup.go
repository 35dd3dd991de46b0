package consensus

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"sync/atomic"

	bolt "go.etcd.io/bbolt"
)

// A request ID names one proposal however many times it is sent. A proposal
// whose outcome was lost with a leader (the old leader may or may not have
// committed it) is sent again to the new leader under the same ID, and each
// replica applies an ID at most once, answering a repeat with the first
// result. Clients therefore see every write applied exactly once instead of
// an "outcome unknown" error.
type reqID [16]byte

// reqIDs makes request IDs: a random prefix per process and a counter, so IDs
// never repeat across restarts.
type reqIDs struct {
	prefix [8]byte
	next   atomic.Uint64
}

func newReqIDs() *reqIDs {
	g := &reqIDs{}
	if _, err := rand.Read(g.prefix[:]); err != nil {
		panic(fmt.Sprintf("consensus: no randomness for request ids: %v", err))
	}
	return g
}

func (g *reqIDs) new() reqID {
	var id reqID
	copy(id[:8], g.prefix[:])
	binary.BigEndian.PutUint64(id[8:], g.next.Add(1))
	return id
}

// dedupWindow is how many recent request IDs a shard remembers. It is part
// of the replicated state, so it must be the same on every node; retries
// happen within seconds, far inside it.
const dedupWindow = 16384

var dedupBucket = []byte("consensus.dedup")

// dedupTable remembers the results of the last dedupWindow requests applied
// to a shard. It changes only in Apply, in log order, so every replica holds
// the same table; it is written into the store just before a snapshot and
// read back on restore, so snapshots carry it too.
type dedupTable struct {
	results map[reqID][]byte
	ring    []reqID
	pos     int
}

func newDedupTable() *dedupTable {
	return &dedupTable{results: make(map[reqID][]byte, dedupWindow), ring: make([]reqID, 0, dedupWindow)}
}

func (d *dedupTable) lookup(id reqID) ([]byte, bool) {
	r, ok := d.results[id]
	return r, ok
}

func (d *dedupTable) add(id reqID, result []byte) {
	if len(d.ring) < dedupWindow {
		d.ring = append(d.ring, id)
	} else {
		delete(d.results, d.ring[d.pos])
		d.ring[d.pos] = id
		d.pos = (d.pos + 1) % dedupWindow
	}
	d.results[id] = append([]byte(nil), result...)
}

// save writes the table, oldest first, into the store.
func (d *dedupTable) save(tx *bolt.Tx) error {
	if err := tx.DeleteBucket(dedupBucket); err != nil && err != bolt.ErrBucketNotFound {
		return err
	}
	b, err := tx.CreateBucket(dedupBucket)
	if err != nil {
		return err
	}
	n := len(d.ring)
	for i := 0; i < n; i++ {
		id := d.ring[(d.pos+i)%n]
		var k [8]byte
		binary.BigEndian.PutUint64(k[:], uint64(i))
		if err := b.Put(k[:], append(id[:], d.results[id]...)); err != nil {
			return err
		}
	}
	return nil
}

// load reads a table saved by save; a store without one gives an empty table.
func loadDedupTable(tx *bolt.Tx) (*dedupTable, error) {
	d := newDedupTable()
	b := tx.Bucket(dedupBucket)
	if b == nil {
		return d, nil
	}
	err := b.ForEach(func(_, v []byte) error {
		if len(v) < len(reqID{}) {
			return fmt.Errorf("consensus: damaged request table entry")
		}
		var id reqID
		copy(id[:], v)
		d.add(id, v[len(id):])
		return nil
	})
	return d, err
}
