package consensus

import (
	"encoding/binary"
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// Command is one machine's command inside an atomic proposal.
type Command struct {
	Kind Kind
	Cmd  []byte
}

// EncodeAtomic frames commands for different machines of one shard as a
// single KindAtomic command: they commit as one log entry and apply in
// order in one transaction, and a command a Guard refuses skips the rest.
// So one replicated write can, say, store a record and arm its timer.
// Body: count, then kind(1) | uvarint length | command for each.
func EncodeAtomic(cmds ...Command) []byte {
	n := binary.MaxVarintLen64
	for _, c := range cmds {
		n += 1 + binary.MaxVarintLen64 + len(c.Cmd)
	}
	b := make([]byte, 0, n)
	b = binary.AppendUvarint(b, uint64(len(cmds)))
	for _, c := range cmds {
		b = append(b, byte(c.Kind))
		b = binary.AppendUvarint(b, uint64(len(c.Cmd)))
		b = append(b, c.Cmd...)
	}
	return b
}

// DecodeAtomicResult splits the result of a KindAtomic proposal into each
// command's result, in order; a command skipped after a refusal has nil.
func DecodeAtomicResult(res []byte) ([][]byte, error) {
	n, k := binary.Uvarint(res)
	if k <= 0 || n > uint64(len(res)) {
		return nil, errors.New("consensus: malformed atomic result")
	}
	res = res[k:]
	out := make([][]byte, n)
	for i := range out {
		l, k := binary.Uvarint(res)
		if k <= 0 || l > uint64(len(res)-k) {
			return nil, errors.New("consensus: malformed atomic result")
		}
		res = res[k:]
		if l > 0 {
			out[i] = res[1:l:l]
		}
		res = res[l:]
	}
	return out, nil
}

// errAtomicBody marks an atomic command that cannot be applied as sent: the
// proposer's mistake, answered as an error without stopping the shard.
var errAtomicBody = errors.New("consensus: malformed atomic command")

// applyAtomic applies the commands of a KindAtomic entry. Each machine may
// appear once, as Entry.Index is each machine's unique stamp. Results are
// framed as count, then uvarint length | 1 | result for each applied
// command (length 0 for skipped ones), so an empty result stays apart from
// a skipped command.
func (f *shardFSM) applyAtomic(tx *bolt.Tx, e Entry) (res []byte, badBody, err error) {
	body := e.Cmd
	n, k := binary.Uvarint(body)
	if k <= 0 || n == 0 || n > uint64(len(f.machines)) {
		return nil, errAtomicBody, nil
	}
	body = body[k:]
	type sub struct {
		m   Machine
		cmd []byte
	}
	subs := make([]sub, n)
	seen := map[Kind]bool{}
	for i := range subs {
		if len(body) < 1 {
			return nil, errAtomicBody, nil
		}
		kind := Kind(body[0])
		l, k := binary.Uvarint(body[1:])
		if k <= 0 || l > uint64(len(body)-1-k) {
			return nil, errAtomicBody, nil
		}
		m := f.machines[kind]
		if m == nil || seen[kind] {
			return nil, fmt.Errorf("%w: machine of kind %d absent or repeated", errAtomicBody, kind), nil
		}
		seen[kind] = true
		subs[i] = sub{m, body[1+k : 1+k+int(l)]}
		body = body[1+k+int(l):]
	}
	out := binary.AppendUvarint(nil, n)
	refused := false
	for _, s := range subs {
		if refused {
			out = binary.AppendUvarint(out, 0)
			continue
		}
		r, err := s.m.Apply(f.shard, tx, Entry{Index: e.Index, Time: e.Time, Cmd: s.cmd})
		if err != nil {
			return nil, nil, err
		}
		out = binary.AppendUvarint(out, uint64(1+len(r)))
		out = append(append(out, 1), r...)
		if g, ok := s.m.(Guard); ok && g.Refused(r) {
			refused = true
		}
	}
	return out, nil, nil
}
