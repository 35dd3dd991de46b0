package consensus

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"sync"

	"github.com/hashicorp/raft"
)

// Member states.
const (
	MemberActive  = "active"
	MemberLeaving = "leaving" // decommissioning: its shards are being moved away
)

// Member is a node of the site.
type Member struct {
	ID    string `json:"id"`
	Addr  string `json:"addr"` // consensus host:port
	State string `json:"state"`
}

// ConfigDoc is one shared configuration document.
type ConfigDoc struct {
	Content []byte `json:"content"`
	Version uint64 `json:"version"` // meta log index of the upload
}

// MetaState is what the meta group replicates: the site's membership, where
// each shard's replicas should live, and the shared configuration (what etcd
// held for Clearwater).
type MetaState struct {
	Site      string               `json:"site"`
	Shards    int                  `json:"shards"`
	Members   map[string]Member    `json:"members"`
	Placement [][]string           `json:"placement"`
	Configs   map[string]ConfigDoc `json:"configs"`
}

func (s *MetaState) clone() *MetaState {
	c := *s
	c.Members = maps.Clone(s.Members)
	c.Configs = maps.Clone(s.Configs)
	c.Placement = make([][]string, len(s.Placement))
	for i, p := range s.Placement {
		c.Placement[i] = slices.Clone(p)
	}
	return &c
}

// metaCmd is a meta group command.
type metaCmd struct {
	Op        string     `json:"op"` // init, member, remove, placement, config
	Site      string     `json:"site,omitempty"`
	Shards    int        `json:"shards,omitempty"`
	Member    *Member    `json:"member,omitempty"`
	ID        string     `json:"id,omitempty"`
	Placement [][]string `json:"placement,omitempty"`
	Name      string     `json:"name,omitempty"`
	Content   []byte     `json:"content,omitempty"`
}

// metaFSM applies meta commands to an in-memory MetaState; snapshots are JSON.
type metaFSM struct {
	mu      sync.RWMutex
	state   *MetaState
	notify  func() // called after every change, outside the lock
	applied uint64
}

func newMetaFSM(notify func()) *metaFSM {
	return &metaFSM{state: &MetaState{Members: map[string]Member{}, Configs: map[string]ConfigDoc{}}, notify: notify}
}

func (f *metaFSM) get() *MetaState {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.state.clone()
}

func (f *metaFSM) Apply(l *raft.Log) any {
	if l.Type != raft.LogCommand {
		return nil
	}
	var c metaCmd
	if err := json.Unmarshal(l.Data, &c); err != nil {
		return applyResult{err: fmt.Errorf("consensus: bad meta command at %d: %w", l.Index, err)}
	}
	f.mu.Lock()
	s := f.state
	var err error
	switch c.Op {
	case "init":
		if s.Shards == 0 {
			s.Site, s.Shards = c.Site, c.Shards
			s.Placement = make([][]string, c.Shards)
		}
	case "member":
		s.Members[c.Member.ID] = *c.Member
	case "remove":
		delete(s.Members, c.ID)
	case "placement":
		if len(c.Placement) == s.Shards {
			s.Placement = c.Placement
		} else {
			err = fmt.Errorf("placement for %d shards, site has %d", len(c.Placement), s.Shards)
		}
	case "config":
		s.Configs[c.Name] = ConfigDoc{Content: c.Content, Version: l.Index}
	default:
		err = fmt.Errorf("unknown meta op %q", c.Op)
	}
	f.applied = l.Index
	f.mu.Unlock()
	if f.notify != nil {
		f.notify()
	}
	return applyResult{err: err}
}

func (f *metaFSM) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	b, err := json.Marshal(f.state)
	if err != nil {
		return nil, err
	}
	return jsonSnapshot(b), nil
}

func (f *metaFSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	var s MetaState
	if err := json.NewDecoder(rc).Decode(&s); err != nil {
		return fmt.Errorf("consensus: restore meta: %w", err)
	}
	if s.Members == nil {
		s.Members = map[string]Member{}
	}
	if s.Configs == nil {
		s.Configs = map[string]ConfigDoc{}
	}
	f.mu.Lock()
	f.state = &s
	f.mu.Unlock()
	if f.notify != nil {
		f.notify()
	}
	return nil
}

type jsonSnapshot []byte

func (s jsonSnapshot) Persist(sink raft.SnapshotSink) error {
	if _, err := sink.Write(s); err != nil {
		sink.Cancel()
		return err
	}
	return sink.Close()
}

func (jsonSnapshot) Release() {}
