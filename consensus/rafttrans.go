package consensus

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/hashicorp/go-metrics"
	"github.com/hashicorp/raft"
)

// raftTransport is one group's raft.Transport. Its RPCs share the node's
// multiplexed connection to each peer with every other group; snapshots,
// which may be large, travel on a connection of their own.
type raftTransport struct {
	t        *transport
	group    uint16
	consumer chan raft.RPC
	hbMu     sync.Mutex
	hb       func(raft.RPC)
	done     chan struct{}
	once     sync.Once
}

var (
	_ raft.Transport   = (*raftTransport)(nil)
	_ raft.WithPreVote = (*raftTransport)(nil)
	_ raft.WithClose   = (*raftTransport)(nil)
)

// maxPipeline is how many AppendEntries a leader may have in flight to one
// follower of one group.
const maxPipeline = 64

func (rt *raftTransport) Consumer() <-chan raft.RPC { return rt.consumer }

func (rt *raftTransport) LocalAddr() raft.ServerAddress { return raft.ServerAddress(rt.t.addr) }

func (rt *raftTransport) EncodePeer(_ raft.ServerID, addr raft.ServerAddress) []byte {
	return []byte(addr)
}

func (rt *raftTransport) DecodePeer(b []byte) raft.ServerAddress { return raft.ServerAddress(b) }

func (rt *raftTransport) SetHeartbeatHandler(cb func(raft.RPC)) {
	rt.hbMu.Lock()
	rt.hb = cb
	rt.hbMu.Unlock()
}

func (rt *raftTransport) Close() error {
	rt.once.Do(func() { close(rt.done) })
	return nil
}

// call sends one RPC and decodes its answer into resp.
func (rt *raftTransport) call(target raft.ServerAddress, typ byte, body func([]byte) []byte, resp any) error {
	select {
	case <-rt.done:
		return raft.ErrTransportShutdown
	default:
	}
	c, err := rt.t.peer(string(target))
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
	defer cancel()
	p, err := c.call(ctx, typ, rt.group, body)
	if err != nil {
		return err
	}
	return decodeRPCResponse(typ, p, resp)
}

func (rt *raftTransport) AppendEntries(_ raft.ServerID, target raft.ServerAddress, args *raft.AppendEntriesRequest, resp *raft.AppendEntriesResponse) error {
	return rt.call(target, frameAppend, func(b []byte) []byte { return appendAppendRequest(b, args) }, resp)
}

func (rt *raftTransport) RequestVote(_ raft.ServerID, target raft.ServerAddress, args *raft.RequestVoteRequest, resp *raft.RequestVoteResponse) error {
	return rt.call(target, frameVote, jsonBody(args), resp)
}

func (rt *raftTransport) RequestPreVote(_ raft.ServerID, target raft.ServerAddress, args *raft.RequestPreVoteRequest, resp *raft.RequestPreVoteResponse) error {
	return rt.call(target, framePreVote, jsonBody(args), resp)
}

func (rt *raftTransport) TimeoutNow(_ raft.ServerID, target raft.ServerAddress, args *raft.TimeoutNowRequest, resp *raft.TimeoutNowResponse) error {
	return rt.call(target, frameTimeoutNow, jsonBody(args), resp)
}

func jsonBody(v any) func([]byte) []byte {
	b, _ := json.Marshal(v)
	return func(out []byte) []byte { return append(out, b...) }
}

// heartbeat runs the group's heartbeat fast path, if it has one, so that a
// heartbeat never waits behind log appends.
func (rt *raftTransport) heartbeat(in rpcIn, w *frameWriter, f frame) bool {
	rt.hbMu.Lock()
	fn := rt.hb
	rt.hbMu.Unlock()
	if fn == nil {
		return false
	}
	fn(in.rpc)
	select {
	case r := <-in.resp:
		respondRPC(w, f, r.Response, r.Error)
	default:
		respondRPC(w, f, nil, raft.ErrTransportShutdown) // raft is shutting down
	}
	return true
}

// dispatch hands an RPC to the group and queues its answer; false means the
// connection closed.
func (rt *raftTransport) dispatch(in rpcIn, w *frameWriter, f frame, connDone <-chan struct{}) bool {
	start := time.Now()
	select {
	case rt.consumer <- in.rpc:
	case <-rt.done:
		respondRPC(w, f, nil, raft.ErrTransportShutdown)
		return true
	case <-connDone:
		return false
	}
	if f.typ == frameAppend {
		metrics.MeasureSinceWithLabels([]string{"raft", "net", "rpcEnqueue"}, start, []metrics.Label{{Name: "rpcType", Value: "AppendEntries"}})
	}
	select {
	case r := <-in.resp:
		respondRPC(w, f, r.Response, r.Error)
		return true
	case <-rt.done:
		respondRPC(w, f, nil, raft.ErrTransportShutdown)
		return true
	case <-connDone:
		return false
	}
}

// rpcIn is a decoded request and the channel raft answers it on.
type rpcIn struct {
	rpc  raft.RPC
	resp chan raft.RPCResponse
}

func decodeRPC(typ byte, p []byte) (rpcIn, bool, error) {
	resp := make(chan raft.RPCResponse, 1)
	in := rpcIn{rpc: raft.RPC{RespChan: resp}, resp: resp}
	switch typ {
	case frameAppend:
		req, err := decodeAppendRequest(p)
		if err != nil {
			return in, false, err
		}
		in.rpc.Command = req
		leader := req.Addr
		if len(leader) == 0 {
			leader = req.Leader
		}
		hb := req.Term != 0 && leader != nil && req.PrevLogEntry == 0 && req.PrevLogTerm == 0 &&
			len(req.Entries) == 0 && req.LeaderCommitIndex == 0
		return in, hb, nil
	case frameVote:
		var req raft.RequestVoteRequest
		in.rpc.Command = &req
		return in, false, json.Unmarshal(p, &req)
	case framePreVote:
		var req raft.RequestPreVoteRequest
		in.rpc.Command = &req
		return in, false, json.Unmarshal(p, &req)
	case frameTimeoutNow:
		var req raft.TimeoutNowRequest
		in.rpc.Command = &req
		return in, false, json.Unmarshal(p, &req)
	}
	return in, false, fmt.Errorf("consensus: unknown rpc type %d", typ)
}

// respondRPC queues a response frame: the error text (empty for none), then
// the response.
func respondRPC(w *frameWriter, f frame, resp any, rerr error) {
	_ = w.add(func(b []byte) []byte {
		b, start := beginFrame(b, f.typ|frameResponse, f.group, f.id)
		msg := ""
		if rerr != nil {
			msg = rerr.Error()
		}
		b = appendBytes(b, []byte(msg))
		if rerr == nil {
			switch r := resp.(type) {
			case *raft.AppendEntriesResponse:
				b = appendAppendResponse(b, r)
			default:
				j, _ := json.Marshal(r)
				b = append(b, j...)
			}
		}
		return endFrame(b, start)
	})
}

func decodeRPCResponse(typ byte, p []byte, resp any) error {
	d := decoder{b: p}
	msg := d.bytes()
	if d.err != nil {
		return d.err
	}
	if len(msg) > 0 {
		return errors.New(string(msg))
	}
	if typ == frameAppend {
		return decodeAppendResponse(d.b, resp.(*raft.AppendEntriesResponse))
	}
	return json.Unmarshal(d.b, resp)
}

// AppendEntriesPipeline sends AppendEntries without waiting for answers;
// answers come back in order on its Consumer.
func (rt *raftTransport) AppendEntriesPipeline(_ raft.ServerID, target raft.ServerAddress) (raft.AppendPipeline, error) {
	c, err := rt.t.peer(string(target))
	if err != nil {
		return nil, err
	}
	p := &pipeline{
		rt: rt, c: c,
		inflight: make(chan *appendFuture, maxPipeline),
		doneCh:   make(chan raft.AppendFuture, maxPipeline),
		shutdown: make(chan struct{}),
	}
	go p.deliver()
	return p, nil
}

type pipeline struct {
	rt       *raftTransport
	c        *muxClient
	inflight chan *appendFuture
	doneCh   chan raft.AppendFuture
	shutdown chan struct{}
	once     sync.Once
}

func (p *pipeline) AppendEntries(args *raft.AppendEntriesRequest, resp *raft.AppendEntriesResponse) (raft.AppendFuture, error) {
	f := &appendFuture{start: time.Now(), args: args, resp: resp, done: make(chan struct{})}
	// Reserve a place first: the answer may arrive before send returns.
	select {
	case p.inflight <- f:
	case <-p.shutdown:
		return nil, raft.ErrPipelineShutdown
	}
	_, err := p.c.send(frameAppend, p.rt.group, func(b []byte) []byte { return appendAppendRequest(b, args) },
		func(payload []byte, err error) {
			if err == nil {
				err = decodeRPCResponse(frameAppend, payload, resp)
			}
			f.err = err
			close(f.done)
		})
	if err != nil {
		// The reserved place is answered with the error; raft stops the
		// pipeline when it sees an unsuccessful answer.
		f.err = err
		close(f.done)
		return nil, err
	}
	return f, nil
}

// deliver passes answered futures to the consumer in the order sent.
func (p *pipeline) deliver() {
	for {
		select {
		case f := <-p.inflight:
			select {
			case <-f.done:
			case <-p.shutdown:
				return
			}
			select {
			case p.doneCh <- f:
			case <-p.shutdown:
				return
			}
		case <-p.shutdown:
			return
		}
	}
}

func (p *pipeline) Consumer() <-chan raft.AppendFuture { return p.doneCh }

func (p *pipeline) Close() error {
	p.once.Do(func() { close(p.shutdown) })
	return nil
}

type appendFuture struct {
	start time.Time
	args  *raft.AppendEntriesRequest
	resp  *raft.AppendEntriesResponse
	done  chan struct{}
	err   error
}

func (f *appendFuture) Error() error {
	<-f.done
	return f.err
}
func (f *appendFuture) Start() time.Time                      { return f.start }
func (f *appendFuture) Request() *raft.AppendEntriesRequest   { return f.args }
func (f *appendFuture) Response() *raft.AppendEntriesResponse { return f.resp }

// InstallSnapshot streams a snapshot on a connection of its own: the request
// as length-prefixed JSON, then the data; the answer comes back the same way.
func (rt *raftTransport) InstallSnapshot(_ raft.ServerID, target raft.ServerAddress, args *raft.InstallSnapshotRequest, resp *raft.InstallSnapshotResponse, data io.Reader) error {
	ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
	conn, err := rt.t.dial(ctx, string(target), streamSnapshot, rt.group)
	cancel()
	if err != nil {
		return err
	}
	defer conn.Close()
	// As hashicorp's transport does: the timeout grows with the snapshot.
	timeout := ioTimeout * time.Duration(max(1, args.Size/(256<<10)))
	_ = conn.SetDeadline(time.Now().Add(timeout))
	bw := bufio.NewWriterSize(conn, 64<<10)
	req, _ := json.Marshal(args)
	if _, err := bw.Write(appendBytes(nil, req)); err != nil {
		return err
	}
	if _, err := io.CopyN(bw, data, args.Size); err != nil {
		return fmt.Errorf("consensus: send snapshot: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	p, err := readPrefixed(conn.(*trackedConn).r)
	if err != nil {
		return fmt.Errorf("consensus: snapshot answer: %w", err)
	}
	return decodeRPCResponse(frameVote, p, resp)
}

// serveSnapshot receives one InstallSnapshot on its own connection.
func (t *transport) serveSnapshot(conn *trackedConn, group uint16) {
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(ioTimeout))
	p, err := readPrefixed(conn.r)
	if err != nil {
		return
	}
	var req raft.InstallSnapshotRequest
	if err := json.Unmarshal(p, &req); err != nil {
		t.log.Warn("consensus: bad snapshot request", "peer", conn.peer, "err", err)
		return
	}
	_ = conn.SetDeadline(time.Now().Add(ioTimeout * time.Duration(max(1, req.Size/(256<<10)))))
	resp := make(chan raft.RPCResponse, 1)
	rpc := raft.RPC{Command: &req, Reader: io.LimitReader(conn.r, req.Size), RespChan: resp}
	var out raft.RPCResponse
	rt := t.raftGroup(group)
	if rt == nil {
		out.Error = fmt.Errorf("consensus: no replica of %s here", groupName(groupShard(group)))
	} else {
		select {
		case rt.consumer <- rpc:
			select {
			case out = <-resp:
			case <-rt.done:
				out.Error = raft.ErrTransportShutdown
			}
		case <-rt.done:
			out.Error = raft.ErrTransportShutdown
		}
	}
	msg := ""
	if out.Error != nil {
		msg = out.Error.Error()
	}
	b := appendBytes(nil, []byte(msg))
	if out.Error == nil {
		j, _ := json.Marshal(out.Response)
		b = append(b, j...)
	}
	_, _ = conn.Write(appendBytes(nil, b))
}

func readPrefixed(r *bufio.Reader) ([]byte, error) {
	n, err := binary.ReadUvarint(r)
	if err != nil {
		return nil, err
	}
	if n > maxFrame {
		return nil, fmt.Errorf("consensus: message of %d bytes is too large", n)
	}
	b := make([]byte, n)
	_, err = io.ReadFull(r, b)
	return b, err
}

// The hot messages, AppendEntries and its answer, have a compact binary
// encoding; the rare ones travel as JSON.

func appendBytes(b, p []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(p)))
	return append(b, p...)
}

func appendBool(b []byte, v bool) []byte {
	if v {
		return append(b, 1)
	}
	return append(b, 0)
}

func appendHeader(b []byte, h raft.RPCHeader) []byte {
	b = binary.AppendUvarint(b, uint64(h.ProtocolVersion))
	b = appendBytes(b, h.ID)
	return appendBytes(b, h.Addr)
}

func appendAppendRequest(b []byte, r *raft.AppendEntriesRequest) []byte {
	b = appendHeader(b, r.RPCHeader)
	b = binary.AppendUvarint(b, r.Term)
	b = appendBytes(b, r.Leader)
	b = binary.AppendUvarint(b, r.PrevLogEntry)
	b = binary.AppendUvarint(b, r.PrevLogTerm)
	b = binary.AppendUvarint(b, r.LeaderCommitIndex)
	b = binary.AppendUvarint(b, uint64(len(r.Entries)))
	for _, l := range r.Entries {
		b = binary.AppendUvarint(b, l.Index)
		b = binary.AppendUvarint(b, l.Term)
		b = append(b, byte(l.Type))
		b = appendBytes(b, l.Data)
		b = appendBytes(b, l.Extensions)
		var at int64
		if !l.AppendedAt.IsZero() {
			at = l.AppendedAt.UnixNano()
		}
		b = binary.AppendVarint(b, at)
	}
	return b
}

func appendAppendResponse(b []byte, r *raft.AppendEntriesResponse) []byte {
	b = appendHeader(b, r.RPCHeader)
	b = binary.AppendUvarint(b, r.Term)
	b = binary.AppendUvarint(b, r.LastLog)
	b = appendBool(b, r.Success)
	return appendBool(b, r.NoRetryBackoff)
}

// decoder reads what the append functions wrote; the first error sticks.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = errors.New("consensus: truncated message")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.err = errors.New("consensus: truncated message")
		return 0
	}
	d.b = d.b[n:]
	return v
}

// bytes returns a slice of the message (nil when empty), not a copy.
func (d *decoder) bytes() []byte {
	n := d.uvarint()
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)) {
		d.err = errors.New("consensus: truncated message")
		return nil
	}
	if n == 0 {
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) byte1() byte {
	if d.err != nil {
		return 0
	}
	if len(d.b) == 0 {
		d.err = errors.New("consensus: truncated message")
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

func (d *decoder) header() raft.RPCHeader {
	return raft.RPCHeader{ProtocolVersion: raft.ProtocolVersion(d.uvarint()), ID: d.bytes(), Addr: d.bytes()}
}

func decodeAppendRequest(p []byte) (*raft.AppendEntriesRequest, error) {
	d := decoder{b: p}
	r := &raft.AppendEntriesRequest{RPCHeader: d.header()}
	r.Term = d.uvarint()
	r.Leader = d.bytes()
	r.PrevLogEntry = d.uvarint()
	r.PrevLogTerm = d.uvarint()
	r.LeaderCommitIndex = d.uvarint()
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		return nil, fmt.Errorf("consensus: AppendEntries claims %d entries in %d bytes", n, len(d.b))
	}
	if n > 0 {
		logs := make([]raft.Log, n)
		r.Entries = make([]*raft.Log, n)
		for i := range logs {
			l := &logs[i]
			l.Index = d.uvarint()
			l.Term = d.uvarint()
			l.Type = raft.LogType(d.byte1())
			l.Data = d.bytes()
			l.Extensions = d.bytes()
			if at := d.varint(); at != 0 {
				l.AppendedAt = time.Unix(0, at)
			}
			r.Entries[i] = l
		}
	}
	if d.err != nil {
		return nil, d.err
	}
	return r, nil
}

func decodeAppendResponse(p []byte, r *raft.AppendEntriesResponse) error {
	d := decoder{b: p}
	r.RPCHeader = d.header()
	r.Term = d.uvarint()
	r.LastLog = d.uvarint()
	r.Success = d.byte1() == 1
	r.NoRetryBackoff = d.byte1() == 1
	return d.err
}
