package consensus

import (
	"context"
	"errors"
	"fmt"

	"github.com/hashicorp/raft"
)

// A proposal made on a node that does not lead its shard travels to the
// leader as a frame on the multiplexed connection: kind(1) | request id(16) |
// command, with the shard in the frame's group field. The answer is a status
// byte and the result, the leader's address or an error text.
const (
	propOK            = byte(0)
	propRedirect      = byte(1) // body: the leader's address, if known
	propIndeterminate = byte(2)
	propNoQuorum      = byte(3)
	propRemote        = byte(4) // the machine's or the request's own error
	propNoLeader      = propRedirect
)

type proposeResult struct {
	status byte
	body   []byte
}

func respondPropose(w *frameWriter, f frame, r proposeResult) {
	_ = w.add(func(b []byte) []byte {
		b, start := beginFrame(b, framePropose|frameResponse, f.group, f.id)
		b = append(b, r.status)
		return endFrame(append(b, r.body...), start)
	})
}

// serveProposal commits a forwarded proposal if this node leads its shard.
func (n *Node) serveProposal(f frame, w *frameWriter) {
	respondPropose(w, f, n.proposeHere(f))
}

func (n *Node) proposeHere(f frame) proposeResult {
	shard := int(f.group)
	if !n.serving.Load() {
		return proposeResult{propRedirect, nil}
	}
	if len(f.payload) < 1+len(reqID{}) {
		return proposeResult{propRemote, []byte("consensus: proposal frame too short")}
	}
	if shard >= n.id.Shards {
		return proposeResult{propRemote, fmt.Appendf(nil, "consensus: no shard %d", shard)}
	}
	g := n.shard(shard)
	if g == nil || !g.isLeader() {
		hint := ""
		if g != nil {
			hint = g.leaderAddr()
		}
		return proposeResult{propRedirect, []byte(hint)}
	}
	var id reqID
	copy(id[:], f.payload[1:])
	res, err := g.proposeShard(Kind(f.payload[0]), id, f.payload[1+len(id):])
	switch err = n.classify(err); {
	case err == nil:
		return proposeResult{propOK, res}
	case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrLeadershipTransferInProgress):
		return proposeResult{propRedirect, nil}
	case errors.Is(err, ErrIndeterminate):
		return proposeResult{propIndeterminate, []byte(err.Error())}
	case retryable(err), errors.Is(err, ErrNoQuorum), errors.Is(err, context.DeadlineExceeded):
		return proposeResult{propNoQuorum, []byte(err.Error())}
	default:
		return proposeResult{propRemote, []byte(err.Error())}
	}
}

// forwardPropose sends a proposal to the node at addr, with the same outcomes
// as forward: unreachable (never sent), indeterminate, a redirect, no quorum,
// the machine's error or the result.
func (n *Node) forwardPropose(ctx context.Context, addr string, shard int, kind Kind, id reqID, cmd []byte) ([]byte, string, error) {
	c, err := n.trans.peer(addr)
	if err != nil {
		return nil, "", fmt.Errorf("consensus: %s unreachable: %w", addr, err)
	}
	type result struct {
		p   []byte
		err error
	}
	ch := make(chan result, 1)
	rid, err := c.send(framePropose, uint16(shard), func(b []byte) []byte {
		b = append(b, byte(kind))
		b = append(b, id[:]...)
		return append(b, cmd...)
	}, func(p []byte, err error) { ch <- result{p, err} })
	if err != nil {
		return nil, "", fmt.Errorf("consensus: %s unreachable: %w", addr, err)
	}
	var r result
	select {
	case r = <-ch:
	case <-ctx.Done():
		c.forget(rid)
		return nil, "", fmt.Errorf("consensus: %s did not answer: %w", addr, ctx.Err())
	}
	if r.err != nil {
		return nil, "", fmt.Errorf("%w: %v", ErrIndeterminate, r.err)
	}
	if len(r.p) == 0 {
		return nil, "", fmt.Errorf("%w: empty answer from %s", ErrIndeterminate, addr)
	}
	body := r.p[1:]
	switch r.p[0] {
	case propOK:
		return body, "", nil
	case propRedirect:
		return nil, string(body), errRedirect
	case propIndeterminate:
		return nil, "", fmt.Errorf("%w: %s", ErrIndeterminate, body)
	case propNoQuorum:
		return nil, "", fmt.Errorf("%w: %s: %s", ErrNoQuorum, addr, body)
	default:
		return nil, "", errRemote{msg: string(body)}
	}
}
