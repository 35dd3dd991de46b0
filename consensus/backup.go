package consensus

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"

	bolt "go.etcd.io/bbolt"
)

// A backup is a stream of frames: kind(1) | shard(2) | length(4) | body.
// Frame kind 0 holds the meta state (JSON); other kinds are machine commands
// that rebuild a shard when proposed in order.
const backupMagic = "SWBACKUP1\n"

func writeFrame(w io.Writer, kind byte, shard int, body []byte) error {
	var h [7]byte
	h[0] = kind
	binary.BigEndian.PutUint16(h[1:3], uint16(shard))
	binary.BigEndian.PutUint32(h[3:7], uint32(len(body)))
	if _, err := w.Write(h[:]); err != nil {
		return err
	}
	_, err := w.Write(body)
	return err
}

func readFrame(r io.Reader) (kind byte, shard int, body []byte, err error) {
	var h [7]byte
	if _, err = io.ReadFull(r, h[:]); err != nil {
		return 0, 0, nil, err
	}
	body = make([]byte, binary.BigEndian.Uint32(h[3:7]))
	if _, err = io.ReadFull(r, body); err != nil {
		return 0, 0, nil, fmt.Errorf("truncated frame: %w", err)
	}
	return h[0], int(binary.BigEndian.Uint16(h[1:3])), body, nil
}

// exportTo writes every machine's export of the shard as frames.
func (f *shardFSM) exportTo(w io.Writer) error {
	kinds := make([]int, 0, len(f.machines))
	for k := range f.machines {
		kinds = append(kinds, int(k))
	}
	sort.Ints(kinds)
	return f.view(func(tx *bolt.Tx) error {
		for _, k := range kinds {
			m := f.machines[Kind(k)]
			err := m.Export(f.shard, tx, func(cmd []byte) error {
				return writeFrame(w, byte(k), f.shard, cmd)
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
}

// Backup writes an online backup of the whole site: the shared configuration
// and, for each shard, a consistent export taken on its leader.
func (n *Node) Backup(ctx context.Context, w io.Writer) error {
	bw := bufio.NewWriter(w)
	if _, err := bw.WriteString(backupMagic); err != nil {
		return err
	}
	st, err := n.MetaLinearizable(ctx)
	if err != nil {
		return fmt.Errorf("consensus: backup of the site configuration: %w", err)
	}
	meta, _ := json.Marshal(MetaState{Site: st.Site, Shards: st.Shards, Configs: st.Configs})
	if err := writeFrame(bw, 0, 0, meta); err != nil {
		return err
	}
	for s := 0; s < st.Shards; s++ {
		path := fmt.Sprintf("/v1/export?shard=%d", s)
		res, err := n.route(ctx, s, path, nil, func(g *group) ([]byte, error) {
			if err := g.readIndex(ctx); err != nil {
				return nil, err
			}
			var buf bufferWriter
			err := g.fsm.exportTo(&buf)
			return buf, err
		})
		if err != nil {
			return fmt.Errorf("consensus: backup of shard %d: %w", s, err)
		}
		if _, err := bw.Write(res); err != nil {
			return err
		}
	}
	return bw.Flush()
}

type bufferWriter []byte

func (b *bufferWriter) Write(p []byte) (int, error) { *b = append(*b, p...); return len(p), nil }

// Restore loads a backup into this site, which must have the same number of
// shards. Shared configuration is restored as uploaded documents and every
// shard's commands are proposed in order.
func (n *Node) Restore(ctx context.Context, r io.Reader) (int, error) {
	br := bufio.NewReader(r)
	magic := make([]byte, len(backupMagic))
	if _, err := io.ReadFull(br, magic); err != nil || string(magic) != backupMagic {
		return 0, errors.New("consensus: not a stillwater backup file")
	}
	count := 0
	for {
		kind, shard, body, err := readFrame(br)
		if errors.Is(err, io.EOF) {
			return count, nil
		}
		if err != nil {
			return count, fmt.Errorf("consensus: backup file damaged: %w", err)
		}
		if kind == 0 {
			var st MetaState
			if err := json.Unmarshal(body, &st); err != nil {
				return count, fmt.Errorf("consensus: backup file damaged: %w", err)
			}
			if st.Shards != n.id.Shards {
				return count, fmt.Errorf("consensus: backup has %d shards, this site has %d", st.Shards, n.id.Shards)
			}
			names := make([]string, 0, len(st.Configs))
			for name := range st.Configs {
				names = append(names, name)
			}
			sort.Strings(names)
			for _, name := range names {
				if err := n.SetConfig(ctx, name, st.Configs[name].Content); err != nil {
					return count, err
				}
			}
			continue
		}
		if _, err := n.Propose(ctx, shard, Kind(kind), body); err != nil {
			return count, fmt.Errorf("consensus: restore shard %d: %w", shard, err)
		}
		count++
	}
}

// SetConfig stores a shared configuration document in the meta group; the
// caller has validated it.
func (n *Node) SetConfig(ctx context.Context, name string, content []byte) error {
	return n.proposeMeta(ctx, metaCmd{Op: "config", Name: name, Content: content})
}

// Config returns a shared configuration document as this node knows it.
func (n *Node) Config(name string) (ConfigDoc, bool) {
	n.meta.mu.RLock()
	defer n.meta.mu.RUnlock()
	d, ok := n.meta.state.Configs[name]
	return d, ok
}
