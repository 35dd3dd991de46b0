package consensus

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"sync"

	"github.com/hashicorp/raft"
)

// GroupStatus is one replica's state as its node sees it.
type GroupStatus struct {
	Group   string `json:"group"`
	State   string `json:"state"`
	Voter   bool   `json:"voter"` // this replica votes (a new one catches up first as a nonvoter)
	Leader  string `json:"leader"`
	Term    uint64 `json:"term"`
	Last    uint64 `json:"last_index"`
	Commit  uint64 `json:"commit_index"`
	Applied uint64 `json:"applied_index"`
}

// NodeStatus is what one member reports of itself.
type NodeStatus struct {
	ID     string        `json:"id"`
	Addr   string        `json:"addr"`
	Groups []GroupStatus `json:"groups,omitempty"`
	Error  string        `json:"error,omitempty"`
}

// SiteStatus is the site as seen from one node: membership and placement
// from the meta group, and every reachable member's replicas.
type SiteStatus struct {
	Meta  *MetaState   `json:"meta"`
	Nodes []NodeStatus `json:"nodes"`
}

func (n *Node) localStatus() NodeStatus {
	ns := NodeStatus{ID: n.cfg.NodeID, Addr: n.cfg.Addr}
	n.mu.RLock()
	groups := []*group{n.metaG}
	for _, g := range n.shards {
		groups = append(groups, g)
	}
	n.mu.RUnlock()
	for _, g := range groups {
		if g == nil {
			continue
		}
		_, leader := g.raft.LeaderWithID()
		voter := false
		if f := g.raft.GetConfiguration(); f.Error() == nil {
			for _, srv := range f.Configuration().Servers {
				voter = voter || (string(srv.ID) == n.cfg.NodeID && srv.Suffrage == raft.Voter)
			}
		}
		ns.Groups = append(ns.Groups, GroupStatus{
			Group: groupName(g.shard), State: g.raft.State().String(), Voter: voter, Leader: string(leader),
			Term: g.raft.CurrentTerm(), Last: g.raft.LastIndex(), Commit: g.raft.CommitIndex(), Applied: g.raft.AppliedIndex(),
		})
	}
	sort.Slice(ns.Groups, func(i, j int) bool { return groupOrder(ns.Groups[i].Group) < groupOrder(ns.Groups[j].Group) })
	return ns
}

func groupOrder(name string) int {
	var s int
	if name == "meta" {
		return -1
	}
	_, _ = fmt.Sscanf(name, "s%d", &s)
	return s
}

// Status gathers every member's report.
func (n *Node) Status(ctx context.Context) SiteStatus {
	st := n.meta.get()
	out := SiteStatus{Meta: st}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, m := range st.Members {
		wg.Add(1)
		go func(m Member) {
			defer wg.Done()
			var ns NodeStatus
			if m.ID == n.cfg.NodeID {
				ns = n.localStatus()
			} else if b, err := n.call(ctx, m.Addr, "/v1/status", nil); err != nil {
				ns = NodeStatus{ID: m.ID, Addr: m.Addr, Error: err.Error()}
			} else if err := json.Unmarshal(b, &ns); err != nil {
				ns = NodeStatus{ID: m.ID, Addr: m.Addr, Error: err.Error()}
			}
			mu.Lock()
			out.Nodes = append(out.Nodes, ns)
			mu.Unlock()
		}(m)
	}
	wg.Wait()
	sort.Slice(out.Nodes, func(i, j int) bool { return out.Nodes[i].ID < out.Nodes[j].ID })
	return out
}
