package consensus

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/hashicorp/raft"
)

// rpcHandler serves the node-to-node API on the consensus port. Every
// request has come through the site's mutual TLS.
func (n *Node) rpcHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/query", n.handleShardOp(func(g *group, kind Kind, body []byte, r *http.Request) ([]byte, error) {
		if err := g.readIndex(r.Context()); err != nil {
			return nil, err
		}
		return n.localQuery(g, kind, body)
	}))
	mux.HandleFunc("POST /v1/meta", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if !n.metaG.isLeader() {
			redirect(w, n.metaG.leaderAddr())
			return
		}
		_, err := n.metaG.propose(body)
		writeResult(w, nil, n.classify(err))
	})
	mux.HandleFunc("POST /v1/join", n.handleJoin)
	mux.HandleFunc("POST /v1/metastate", func(w http.ResponseWriter, r *http.Request) {
		if !n.metaG.isLeader() {
			redirect(w, n.metaG.leaderAddr())
			return
		}
		if err := n.metaG.raft.Barrier(5 * time.Second).Error(); err != nil {
			writeResult(w, nil, n.classify(err))
			return
		}
		b, _ := json.Marshal(n.meta.get())
		w.Write(b)
	})
	mux.HandleFunc("POST /v1/remove", n.handleRemove)
	mux.HandleFunc("POST /v1/shard/info", n.handleShardOp(func(g *group, _ Kind, _ []byte, _ *http.Request) ([]byte, error) {
		return json.Marshal(g.info())
	}))
	mux.HandleFunc("POST /v1/shard/change", n.handleShardOp(func(g *group, _ Kind, body []byte, _ *http.Request) ([]byte, error) {
		var c shardChange
		if err := json.Unmarshal(body, &c); err != nil {
			return nil, err
		}
		return nil, g.change(c)
	}))
	mux.HandleFunc("POST /v1/export", n.handleExport)
	mux.HandleFunc("POST /v1/status", func(w http.ResponseWriter, r *http.Request) {
		b, _ := json.Marshal(n.localStatus())
		w.Write(b)
	})
	return mux
}

func redirect(w http.ResponseWriter, leader string) {
	w.Header().Set("X-Leader", leader)
	http.Error(w, "not the leader", http.StatusMisdirectedRequest)
}

func writeResult(w http.ResponseWriter, res []byte, err error) {
	switch {
	case err == nil:
		w.Write(res)
	case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrLeadershipTransferInProgress):
		redirect(w, "")
	case errors.Is(err, ErrIndeterminate):
		http.Error(w, err.Error(), http.StatusConflict)
	case errors.Is(err, ErrNoQuorum), errors.Is(err, raft.ErrEnqueueTimeout), errors.Is(err, context.DeadlineExceeded):
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
	default:
		http.Error(w, err.Error(), http.StatusInternalServerError)
	}
}

type shardOp func(g *group, kind Kind, body []byte, r *http.Request) ([]byte, error)

// handleShardOp runs op if this node leads the shard named in the query, and
// otherwise redirects the caller to the leader it knows of.
func (n *Node) handleShardOp(op shardOp) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		shard, err := strconv.Atoi(r.URL.Query().Get("shard"))
		if err != nil || shard < 0 || shard >= n.id.Shards {
			http.Error(w, "bad shard", http.StatusBadRequest)
			return
		}
		kind, _ := strconv.Atoi(r.URL.Query().Get("kind"))
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		g := n.shard(shard)
		if g == nil || !g.isLeader() {
			hint := ""
			if g != nil {
				hint = g.leaderAddr()
			}
			redirect(w, hint)
			return
		}
		res, err := op(g, Kind(kind), body, r)
		writeResult(w, res, n.classify(err))
	}
}

func (n *Node) handleJoin(w http.ResponseWriter, r *http.Request) {
	var m Member
	if err := json.NewDecoder(r.Body).Decode(&m); err != nil || m.ID == "" || m.Addr == "" {
		http.Error(w, "bad join request", http.StatusBadRequest)
		return
	}
	if !n.metaG.isLeader() {
		redirect(w, n.metaG.leaderAddr())
		return
	}
	st := n.meta.get()
	if st.Shards == 0 {
		// The site is still being created: the joiner asks again.
		http.Error(w, "site is being created", http.StatusServiceUnavailable)
		return
	}
	if old, ok := st.Members[m.ID]; ok && old.Addr != m.Addr {
		http.Error(w, fmt.Sprintf("node id %s is already a member at %s", m.ID, old.Addr), http.StatusConflict)
		return
	}
	m.State = MemberActive
	if err := n.proposeMeta(r.Context(), metaCmd{Op: "member", Member: &m}); err != nil {
		writeResult(w, nil, err)
		return
	}
	if err := n.metaG.raft.AddVoter(raft.ServerID(m.ID), raft.ServerAddress(m.Addr), 0, 10*time.Second).Error(); err != nil {
		writeResult(w, nil, n.classify(err))
		return
	}
	n.log.Info("consensus: member joined", "id", m.ID, "addr", m.Addr)
	n.kick()
	b, _ := json.Marshal(n.meta.get())
	w.Write(b)
}

// handleRemove removes a member, dead or decommissioned, from the site.
func (n *Node) handleRemove(w http.ResponseWriter, r *http.Request) {
	id := r.URL.Query().Get("id")
	if !n.metaG.isLeader() {
		redirect(w, n.metaG.leaderAddr())
		return
	}
	if err := n.removeMember(r.Context(), id); err != nil {
		writeResult(w, nil, err)
		return
	}
	w.Write([]byte("{}"))
}

func (n *Node) removeMember(ctx context.Context, id string) error {
	st := n.meta.get()
	if _, ok := st.Members[id]; !ok {
		return errRemote{msg: fmt.Sprintf("no member %q", id)}
	}
	if len(st.Members) == 1 {
		return errRemote{msg: "cannot remove the last member of a site"}
	}
	if err := n.proposeMeta(ctx, metaCmd{Op: "remove", ID: id}); err != nil {
		return err
	}
	if id == n.cfg.NodeID {
		// Hand the meta leadership on before leaving the group.
		if err := n.metaG.raft.LeadershipTransfer().Error(); err != nil {
			return n.classify(err)
		}
		return nil
	}
	if err := n.metaG.raft.RemoveServer(raft.ServerID(id), 0, 10*time.Second).Error(); err != nil {
		return n.classify(err)
	}
	n.log.Info("consensus: member removed", "id", id)
	n.kick()
	return nil
}

// shardInfo is a shard leader's view of its group.
type shardInfo struct {
	Leader    string   `json:"leader"`
	Voters    []string `json:"voters"`
	Nonvoters []string `json:"nonvoters,omitempty"`
	Last      uint64   `json:"last"`
	Commit    uint64   `json:"commit"`
	Applied   uint64   `json:"applied"`
}

// has reports whether id is a voter or a catching-up nonvoter of the shard.
func (si shardInfo) has(id string) bool {
	return slices.Contains(si.Voters, id) || slices.Contains(si.Nonvoters, id)
}

func (g *group) info() shardInfo {
	si := shardInfo{Last: g.raft.LastIndex(), Commit: g.raft.CommitIndex(), Applied: g.raft.AppliedIndex()}
	_, si.Leader = func() (raft.ServerAddress, string) { a, id := g.raft.LeaderWithID(); return a, string(id) }()
	if f := g.raft.GetConfiguration(); f.Error() == nil {
		for _, s := range f.Configuration().Servers {
			if s.Suffrage == raft.Voter {
				si.Voters = append(si.Voters, string(s.ID))
			} else {
				si.Nonvoters = append(si.Nonvoters, string(s.ID))
			}
		}
	}
	return si
}

// shardChange asks a shard leader to change its group's membership.
type shardChange struct {
	AddNonvoter *Member `json:"add_nonvoter,omitempty"`
	Add         *Member `json:"add,omitempty"`
	Remove      string  `json:"remove,omitempty"`
	TransferTo  *Member `json:"transfer_to,omitempty"`
}

func (g *group) change(c shardChange) error {
	switch {
	case c.AddNonvoter != nil:
		return g.raft.AddNonvoter(raft.ServerID(c.AddNonvoter.ID), raft.ServerAddress(c.AddNonvoter.Addr), 0, 10*time.Second).Error()
	case c.Add != nil:
		return g.raft.AddVoter(raft.ServerID(c.Add.ID), raft.ServerAddress(c.Add.Addr), 0, 10*time.Second).Error()
	case c.TransferTo != nil:
		return g.raft.LeadershipTransferToServer(raft.ServerID(c.TransferTo.ID), raft.ServerAddress(c.TransferTo.Addr)).Error()
	case c.Remove != "":
		return g.raft.RemoveServer(raft.ServerID(c.Remove), 0, 10*time.Second).Error()
	}
	return nil
}

// handleExport streams, from the shard leader, a consistent export of every
// machine's state in the shard.
func (n *Node) handleExport(w http.ResponseWriter, r *http.Request) {
	n.handleShardOp(func(g *group, _ Kind, _ []byte, r *http.Request) ([]byte, error) {
		if err := g.readIndex(r.Context()); err != nil {
			return nil, err
		}
		var buf bytes.Buffer
		err := g.fsm.exportTo(&buf)
		return buf.Bytes(), err
	})(w, r)
}
