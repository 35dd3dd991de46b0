package consensus

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"os"
	"slices"
	"sort"
	"sync"
	"time"
)

// replicasPerShard is how many voters a shard has once the site has more
// nodes than that; smaller sites put every node in every shard.
const replicasPerShard = 3

// placeShards chooses each shard's voters among the active members by
// rendezvous hashing, so adding or removing a node moves only the shards whose
// top choices changed.
func placeShards(shards int, members map[string]Member) [][]string {
	var ids []string
	for id, m := range members {
		if m.State == MemberActive {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	out := make([][]string, shards)
	for s := range out {
		if len(ids) <= replicasPerShard {
			out[s] = slices.Clone(ids)
			continue
		}
		ranked := slices.Clone(ids)
		sort.Slice(ranked, func(i, j int) bool {
			hi, hj := rendezvous(s, ranked[i]), rendezvous(s, ranked[j])
			if hi != hj {
				return hi > hj
			}
			return ranked[i] < ranked[j]
		})
		out[s] = ranked[:replicasPerShard]
		sort.Strings(out[s])
	}
	return out
}

func rendezvous(shard int, id string) uint64 {
	h := fnv.New64a()
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(shard))
	h.Write(b[:])
	h.Write([]byte(id))
	return h.Sum64()
}

func placementEqual(a, b [][]string) bool {
	return slices.EqualFunc(a, b, func(x, y []string) bool { return slices.Equal(x, y) })
}

// manageReplicas starts the replicas the placement gives this node and stops
// those it no longer holds.
func (n *Node) manageReplicas() {
	defer n.wg.Done()
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-n.changed:
			n.reconcileReplicas()
			n.reconcilePlacement()
		case <-tick.C:
			n.reconcileReplicas()
		}
	}
}

func (n *Node) reconcileReplicas() {
	st := n.meta.get()
	for s := 0; s < st.Shards && s < len(st.Placement); s++ {
		placed := slices.Contains(st.Placement[s], n.cfg.NodeID)
		g := n.shard(s)
		switch {
		case g == nil && placed:
			if err := n.startShard(s, nil); err != nil {
				n.log.Error("consensus: start replica", "shard", s, "err", err)
			}
		case g != nil && !placed && len(st.Placement[s]) > 0:
			// Stop only once the shard's leader no longer counts us a voter,
			// so the shard never loses a replica it still relies on.
			ctx, cancel := context.WithTimeout(n.ctx, 2*time.Second)
			si, err := n.shardInfoRemote(ctx, s)
			cancel()
			if err != nil || si.has(n.cfg.NodeID) || si.Leader == n.cfg.NodeID {
				continue
			}
			n.dropShard(s, g)
		}
	}
}

func (n *Node) dropShard(s int, g *group) {
	n.mu.Lock()
	delete(n.shards, s)
	n.mu.Unlock()
	if err := g.stop(n.deps); err != nil {
		n.log.Warn("consensus: stop replica", "shard", s, "err", err)
	}
	if err := n.cfg.Logs.DropGroup(groupName(s)); err != nil {
		n.log.Error("consensus: drop replica log", "shard", s, "err", err)
	}
	os.RemoveAll(g.snapDir)
	n.log.Info("consensus: replica moved away", "shard", s)
}

func (n *Node) shardInfoRemote(ctx context.Context, shard int) (shardInfo, error) {
	var si shardInfo
	path := fmt.Sprintf("/v1/shard/info?shard=%d", shard)
	res, err := n.route(ctx, shard, path, nil, func(g *group) ([]byte, error) { return json.Marshal(g.info()) })
	if err != nil {
		return si, err
	}
	return si, json.Unmarshal(res, &si)
}

func (n *Node) shardChangeRemote(ctx context.Context, shard int, c shardChange) error {
	body, _ := json.Marshal(c)
	path := fmt.Sprintf("/v1/shard/change?shard=%d", shard)
	_, err := n.route(ctx, shard, path, body, func(g *group) ([]byte, error) { return nil, g.change(c) })
	return err
}

// reconcileLoop runs the placement controller while this node leads the
// meta group.
func (n *Node) reconcileLoop() {
	defer n.wg.Done()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-tick.C:
			n.reconcilePlacement()
		}
	}
}

// reconcilePlacement moves the site one step towards the placement its
// membership calls for: record the placement, add a missing voter, move a
// leadership off a replica that must go, remove a surplus voter, and finally
// drop members that are leaving and hold nothing. One change per shard per
// round keeps every group's configuration change single-step.
func (n *Node) reconcilePlacement() {
	if n.metaG == nil || !n.metaG.ready.Load() {
		return
	}
	if !n.reconciling.TryLock() {
		return // a round is under way
	}
	defer n.reconciling.Unlock()
	ctx, cancel := context.WithTimeout(n.ctx, 10*time.Second)
	defer cancel()
	st := n.meta.get()
	if st.Shards == 0 {
		return
	}
	want := placeShards(st.Shards, st.Members)
	if !placementEqual(want, st.Placement) {
		if err := n.proposeMeta(ctx, metaCmd{Op: "placement", Placement: want}); err != nil {
			n.log.Warn("consensus: record placement", "err", err)
			return
		}
		n.log.Info("consensus: placement changed", "placement", want)
	}
	// Shards converge in parallel: a site forming or a node joining moves
	// every shard at once rather than one step per shard per round.
	var mu sync.Mutex
	var wg sync.WaitGroup
	holding := map[string]bool{}
	settled := make([]shardInfo, st.Shards)
	complete := true
	for shard := 0; shard < st.Shards; shard++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			si, err := n.reconcileShard(ctx, st, shard, want[shard])
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				complete = false
				return
			}
			settled[shard] = si
			for _, id := range append(si.Voters, si.Nonvoters...) {
				holding[id] = true
			}
		}()
	}
	wg.Wait()
	if !complete {
		return // a leaving member may still hold a shard we could not see
	}
	n.balanceLeaders(ctx, st, settled)
	for id, m := range st.Members {
		if m.State == MemberLeaving && !holding[id] {
			if id == n.cfg.NodeID {
				// The leaving node hands the meta leadership to another member,
				// whose controller then removes it.
				n.metaG.raft.LeadershipTransfer()
				continue
			}
			if err := n.removeMember(ctx, id); err != nil {
				n.log.Warn("consensus: remove decommissioned member", "id", id, "err", err)
			}
		}
	}
}

// reconcileShard moves one shard's replicas to want, one configuration
// change at a time, and returns the members that hold a replica of it.
func (n *Node) reconcileShard(ctx context.Context, st *MetaState, shard int, want []string) (shardInfo, error) {
	for {
		si, err := n.shardInfoRemote(ctx, shard)
		if err != nil {
			return si, err
		}
		var missing, promote, extra string
		for _, id := range want {
			switch {
			case slices.Contains(si.Nonvoters, id) && promote == "":
				promote = id
			case !si.has(id) && missing == "":
				missing = id
			}
		}
		for _, id := range append(si.Voters, si.Nonvoters...) {
			if !slices.Contains(want, id) && extra == "" {
				extra = id
			}
		}
		var c shardChange
		switch {
		case missing != "":
			// A new replica first catches up as a nonvoter, so that the
			// shard's quorum never waits on a replica still copying its log.
			m := st.Members[missing]
			c.AddNonvoter = &m
		case promote != "":
			m := st.Members[promote]
			if !n.caughtUp(ctx, m, shard, si.Commit) {
				select {
				case <-ctx.Done():
					return si, ctx.Err()
				case <-time.After(50 * time.Millisecond):
				}
				continue
			}
			c.Add = &m
		case extra != "" && extra == si.Leader:
			// Hand the leadership to a replica that is up and current: a
			// transfer to a dead one would refuse writes until it timed out.
			for _, id := range want {
				if m := st.Members[id]; slices.Contains(si.Voters, id) && n.caughtUp(ctx, m, shard, si.Commit) {
					c.TransferTo = &m
					break
				}
			}
			if c.TransferTo == nil {
				return si, fmt.Errorf("consensus: shard %d: no live replica to hand the leadership to", shard)
			}
		case extra != "":
			c.Remove = extra
		default:
			return si, nil
		}
		if err := n.shardChangeRemote(ctx, shard, c); err != nil {
			n.log.Warn("consensus: shard membership change", "shard", shard, "change", c, "err", err)
			return si, err
		}
		n.log.Info("consensus: shard membership changed", "shard", shard, "change", c)
	}
}

// balanceLeaders moves shard leaderships off a node that leads more than
// its share, so that the leaders' work (proposals, replication, timer pops)
// is spread over the site instead of staying where elections left it. A few
// transfers per round keep the disturbance small.
func (n *Node) balanceLeaders(ctx context.Context, st *MetaState, shards []shardInfo) {
	count := map[string]int{}
	active := 0
	for id, m := range st.Members {
		if m.State == MemberActive {
			count[id] = 0
			active++
		}
	}
	if active < 2 {
		return
	}
	for _, si := range shards {
		if _, ok := count[si.Leader]; ok {
			count[si.Leader]++
		}
	}
	share := (len(shards) + active - 1) / active
	for moved, shard := 0, 0; shard < len(shards) && moved < 2; shard++ {
		si := shards[shard]
		if count[si.Leader] <= share {
			continue
		}
		var to string
		for _, v := range si.Voters {
			if c, ok := count[v]; ok && v != si.Leader && c < share && (to == "" || c < count[to]) {
				to = v
			}
		}
		if to == "" {
			continue
		}
		m := st.Members[to]
		if !n.caughtUp(ctx, m, shard, si.Commit) {
			// A dead or lagging target would hold the shard in "transfer in
			// progress", refusing writes, until the transfer times out.
			continue
		}
		if err := n.shardChangeRemote(ctx, shard, shardChange{TransferTo: &m}); err != nil {
			n.log.Debug("consensus: leadership transfer", "shard", shard, "to", to, "err", err)
			continue
		}
		count[si.Leader]--
		count[to]++
		moved++
	}
}

// caughtUp reports whether member m's replica of shard has applied the
// leader's commit index as it was when the round began.
func (n *Node) caughtUp(ctx context.Context, m Member, shard int, commit uint64) bool {
	var ns NodeStatus
	if m.ID == n.cfg.NodeID {
		ns = n.localStatus()
	} else {
		b, err := n.call(ctx, m.Addr, "/v1/status", nil)
		if err != nil || json.Unmarshal(b, &ns) != nil {
			return false
		}
	}
	for _, g := range ns.Groups {
		if g.Group == groupName(shard) {
			return g.Applied >= commit
		}
	}
	return false
}

// Decommission moves this node's shards to the other members and removes it
// from the site. It returns when the node is no longer a member.
func (n *Node) Decommission(ctx context.Context) error {
	st := n.meta.get()
	active := 0
	for _, m := range st.Members {
		if m.State == MemberActive {
			active++
		}
	}
	if active <= 1 {
		return fmt.Errorf("consensus: cannot decommission the only active member of the site")
	}
	m := Member{ID: n.cfg.NodeID, Addr: n.cfg.Addr, State: MemberLeaving}
	if err := n.proposeMeta(ctx, metaCmd{Op: "member", Member: &m}); err != nil {
		return fmt.Errorf("consensus: decommission: %w", err)
	}
	for {
		if _, ok := n.meta.get().Members[n.cfg.NodeID]; !ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("consensus: decommission did not finish: %w", ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// RemoveNode removes a member that is dead (or otherwise gone) from the site;
// its shards are re-placed on the remaining members.
func (n *Node) RemoveNode(ctx context.Context, id string) error {
	leader := n.metaG.leaderAddr()
	if n.metaG.isLeader() {
		return n.removeMember(ctx, id)
	}
	if leader == "" {
		return fmt.Errorf("%w: meta group has no leader", ErrNoQuorum)
	}
	_, err := n.call(ctx, leader, "/v1/remove?id="+id, nil)
	return err
}
