package timerwheel

import (
	"encoding/binary"
	"fmt"
	"hash/fnv"

	"stillwater/consensus"
)

// Change is a timer command committed in the same log entry as another
// machine's write (kv.Rider), so that a record and the timer that expires
// it change together in one replicated write. The timer must live on the
// written record's shard: derive its ID with IDOn.
type Change struct {
	// Shard is the timer's shard.
	Shard int
	// Command is the timer machine's command.
	Command consensus.Command

	id  ID
	set bool
}

// SetChange is Set of t, which must carry its ID, as a Change.
func (s *Service) SetChange(t Timer) (Change, error) {
	if t.ID == 0 {
		return Change{}, fmt.Errorf("%w: a timer set along with another write needs its id", ErrInvalid)
	}
	sp, err := t.spec()
	if err != nil {
		return Change{}, err
	}
	return Change{Shard: s.cluster.ShardOf(t.ID.key()), id: t.ID, set: true,
		Command: consensus.Command{Kind: consensus.KindTimer, Cmd: encodeSet(t.ID, false, &sp)}}, nil
}

// DeleteChange is Delete of id as a Change.
func (s *Service) DeleteChange(id ID) Change {
	return Change{Shard: s.cluster.ShardOf(id.key()), id: id,
		Command: consensus.Command{Kind: consensus.KindTimer, Cmd: encodeDelete(id)}}
}

// Applied reads the result of a committed Change (nil: it was not applied,
// as the write it rode on was refused) as Set or Delete would.
func (s *Service) Applied(c Change, res []byte) error {
	if res == nil {
		return nil
	}
	st, err := decodeStatus(res)
	if err != nil {
		return err
	}
	switch {
	case st == statusOK && c.set:
		s.created.Add(1)
	case st == statusOK:
		s.deleted.Add(1)
	case st == statusNotFound && !c.set:
	default:
		return fmt.Errorf("timerwheel: change of %v: store answered %v", c.id, st)
	}
	return nil
}

// IDOn derives a timer ID from name that is stored on shard: the same on
// every node, so no node needs to store it, and on the shard of the record
// the timer belongs to, so that the two can change in one entry.
func (s *Service) IDOn(name string, shard int) (ID, error) {
	if shard < 0 || shard >= s.cluster.Shards() {
		return 0, fmt.Errorf("%w: no shard %d", ErrInvalid, shard)
	}
	h := fnv.New64a()
	h.Write([]byte(name))
	id := h.Sum64()
	var key [8]byte
	// Each step lands on a shard with probability 1/Shards: this ends
	// after about Shards tries.
	for {
		binary.BigEndian.PutUint64(key[:], id)
		if id != 0 && s.cluster.ShardOf(key[:]) == shard {
			return ID(id), nil
		}
		id++
	}
}
