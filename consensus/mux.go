package consensus

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"sync"
	"time"
)

// Every Raft RPC of every group, and every forwarded proposal, travels between
// two nodes on one multiplexed connection per direction: the dialling node
// sends requests, the accepting node answers on the same connection. Frames
// queued while a write is under way leave together in the next write, so the
// groups' small messages share TLS records and system calls.
//
// A frame is length(4) | type(1) | group(2) | id(8) | payload, where length
// counts everything after itself. A response carries its request's id and
// its type with the high bit set.
const (
	frameHeader   = 15
	maxFrame      = 256 << 20
	frameResponse = 0x80

	frameAppend     = byte(1)
	frameVote       = byte(2)
	framePreVote    = byte(3)
	frameTimeoutNow = byte(4)
	framePropose    = byte(5)
)

// ioTimeout bounds a write to a peer and a request's wait for its answer.
const ioTimeout = 10 * time.Second

var errMuxClosed = errors.New("consensus: connection to peer closed")

// beginFrame appends a frame header with a length to be fixed by endFrame.
func beginFrame(b []byte, typ byte, group uint16, id uint64) ([]byte, int) {
	start := len(b)
	b = append(b, 0, 0, 0, 0, typ, byte(group>>8), byte(group))
	return binary.BigEndian.AppendUint64(b, id), start
}

func endFrame(b []byte, start int) []byte {
	binary.BigEndian.PutUint32(b[start:], uint32(len(b)-start-4))
	return b
}

// frame is one received frame; payload is owned by the receiver.
type frame struct {
	typ     byte
	group   uint16
	id      uint64
	payload []byte
}

func readMuxFrame(r *bufio.Reader) (frame, error) {
	var h [frameHeader]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return frame{}, err
	}
	n := binary.BigEndian.Uint32(h[:4])
	if n < frameHeader-4 || n > maxFrame {
		return frame{}, fmt.Errorf("consensus: bad frame length %d", n)
	}
	f := frame{typ: h[4], group: binary.BigEndian.Uint16(h[5:7]), id: binary.BigEndian.Uint64(h[7:15])}
	f.payload = make([]byte, n-(frameHeader-4))
	if _, err := io.ReadFull(r, f.payload); err != nil {
		return frame{}, err
	}
	return f, nil
}

// frameWriter owns a connection's writing side: producers append frames to a
// buffer and one goroutine writes whatever has accumulated in one call.
type frameWriter struct {
	conn   net.Conn
	mu     sync.Mutex
	buf    []byte
	err    error
	signal chan struct{}
	done   chan struct{} // closed when the writer stops
}

func newFrameWriter(conn net.Conn) *frameWriter {
	w := &frameWriter{conn: conn, signal: make(chan struct{}, 1), done: make(chan struct{})}
	go w.run()
	return w
}

// add appends a frame built by fill to the queue.
func (w *frameWriter) add(fill func([]byte) []byte) error {
	w.mu.Lock()
	if w.err != nil {
		err := w.err
		w.mu.Unlock()
		return err
	}
	w.buf = fill(w.buf)
	w.mu.Unlock()
	select {
	case w.signal <- struct{}{}:
	default:
	}
	return nil
}

func (w *frameWriter) run() {
	defer close(w.done)
	var spare []byte
	for {
		<-w.signal
		// Let producers that are ready run first, so that their frames
		// leave in this write rather than in one of their own.
		runtime.Gosched()
		w.mu.Lock()
		if w.err != nil {
			w.mu.Unlock()
			return
		}
		out := w.buf
		w.buf = spare[:0]
		w.mu.Unlock()
		if len(out) == 0 {
			spare = out
			continue
		}
		_ = w.conn.SetWriteDeadline(time.Now().Add(ioTimeout))
		if _, err := w.conn.Write(out); err != nil {
			w.fail(err)
			w.conn.Close()
			return
		}
		if cap(out) > 4<<20 {
			out = nil // do not keep a burst's buffer for ever
		}
		spare = out[:0]
	}
}

func (w *frameWriter) fail(err error) {
	w.mu.Lock()
	if w.err == nil {
		w.err = err
	}
	w.buf = nil
	w.mu.Unlock()
	select {
	case w.signal <- struct{}{}:
	default:
	}
}

// muxClient is this node's outgoing connection to one peer: it numbers
// requests and hands each response to the callback its request registered.
type muxClient struct {
	addr    string
	conn    net.Conn
	w       *frameWriter
	mu      sync.Mutex
	next    uint64
	pending map[uint64]func(payload []byte, err error)
	err     error
	dead    chan struct{}
}

// peer returns the live connection to addr, dialling one if there is none.
func (t *transport) peer(addr string) (*muxClient, error) {
	// A cut link fails at once, even while the cut connection's reader has
	// not yet noticed it was closed.
	if host, _, err := net.SplitHostPort(addr); err == nil && t.isBlocked(host) {
		return nil, errPartitioned
	}
	t.peersMu.Lock()
	slot := t.peers[addr]
	if slot == nil {
		slot = &peerSlot{}
		t.peers[addr] = slot
	}
	t.peersMu.Unlock()
	slot.mu.Lock()
	defer slot.mu.Unlock()
	if c := slot.c; c != nil && c.alive() {
		return c, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
	defer cancel()
	conn, err := t.dial(ctx, addr, streamMux, 0)
	if err != nil {
		return nil, err
	}
	c := &muxClient{addr: addr, conn: conn, w: newFrameWriter(conn), pending: map[uint64]func([]byte, error){}, dead: make(chan struct{})}
	go c.readLoop(conn.(*trackedConn).r)
	slot.c = c
	return c, nil
}

// peerSlot serializes dialling one peer so that concurrent callers share a
// connection.
type peerSlot struct {
	mu sync.Mutex
	c  *muxClient
}

func (c *muxClient) alive() bool {
	select {
	case <-c.dead:
		return false
	default:
		return true
	}
}

// send queues a request; cb runs on the connection's reader with the
// response's payload, or once with an error if the connection fails first.
func (c *muxClient) send(typ byte, group uint16, body func([]byte) []byte, cb func([]byte, error)) (uint64, error) {
	c.mu.Lock()
	if c.err != nil {
		err := c.err
		c.mu.Unlock()
		return 0, err
	}
	c.next++
	id := c.next
	c.pending[id] = cb
	c.mu.Unlock()
	err := c.w.add(func(b []byte) []byte {
		b, start := beginFrame(b, typ, group, id)
		return endFrame(body(b), start)
	})
	if err != nil {
		c.forget(id)
		c.close(err)
		return 0, err
	}
	return id, nil
}

// forget drops a request whose caller stopped waiting.
func (c *muxClient) forget(id uint64) {
	c.mu.Lock()
	delete(c.pending, id)
	c.mu.Unlock()
}

// call sends a request and waits for its response payload.
func (c *muxClient) call(ctx context.Context, typ byte, group uint16, body func([]byte) []byte) ([]byte, error) {
	type result struct {
		p   []byte
		err error
	}
	ch := make(chan result, 1)
	id, err := c.send(typ, group, body, func(p []byte, err error) { ch <- result{p, err} })
	if err != nil {
		return nil, err
	}
	select {
	case r := <-ch:
		return r.p, r.err
	case <-ctx.Done():
		c.forget(id)
		return nil, ctx.Err()
	}
}

func (c *muxClient) readLoop(r *bufio.Reader) {
	for {
		f, err := readMuxFrame(r)
		if err != nil {
			c.close(err)
			return
		}
		c.mu.Lock()
		cb := c.pending[f.id]
		delete(c.pending, f.id)
		c.mu.Unlock()
		if cb != nil {
			cb(f.payload, nil)
		}
	}
}

// close fails the connection and every request still waiting on it.
func (c *muxClient) close(err error) {
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return
	}
	c.err = fmt.Errorf("%w: %s: %v", errMuxClosed, c.addr, err)
	pending := c.pending
	c.pending = nil
	close(c.dead)
	c.mu.Unlock()
	c.w.fail(c.err)
	c.conn.Close()
	for _, cb := range pending {
		cb(nil, c.err)
	}
}

// serveMux answers the requests a peer sends on a connection it dialled.
// Raft RPCs of one group are handled in order, one at a time, as a follower
// handles them; groups do not wait for each other.
func (t *transport) serveMux(conn *trackedConn) {
	w := newFrameWriter(conn)
	done := make(chan struct{})
	defer func() {
		close(done)
		w.fail(errMuxClosed)
		conn.Close()
	}()
	lanes := map[uint16]*lane{}
	for {
		f, err := readMuxFrame(conn.r)
		if err != nil {
			return
		}
		switch f.typ {
		case frameAppend, frameVote, framePreVote, frameTimeoutNow:
			rpc, heartbeat, err := decodeRPC(f.typ, f.payload)
			if err != nil {
				t.log.Warn("consensus: bad raft frame", "peer", conn.peer, "err", err)
				return
			}
			if heartbeat {
				if rt := t.raftGroup(f.group); rt != nil && rt.heartbeat(rpc, w, f) {
					continue
				}
			}
			l := lanes[f.group]
			if l == nil {
				l = newLane(t, f.group, w, done)
				lanes[f.group] = l
			}
			l.push(laneItem{rpc: rpc, f: f})
		case framePropose:
			if h := t.proposals; h != nil {
				go h(f, w)
			} else {
				respondPropose(w, f, proposeResult{status: propNoLeader})
			}
		default:
			t.log.Warn("consensus: unknown frame type", "peer", conn.peer, "type", f.typ)
			return
		}
	}
}

type laneItem struct {
	rpc rpcIn
	f   frame
}

// lane feeds one group's RPCs from one connection to the group in order.
type lane struct {
	t      *transport
	group  uint16
	w      *frameWriter
	done   <-chan struct{}
	mu     sync.Mutex
	queue  []laneItem
	signal chan struct{}
}

func newLane(t *transport, group uint16, w *frameWriter, done <-chan struct{}) *lane {
	l := &lane{t: t, group: group, w: w, done: done, signal: make(chan struct{}, 1)}
	go l.run()
	return l
}

func (l *lane) push(it laneItem) {
	l.mu.Lock()
	l.queue = append(l.queue, it)
	l.mu.Unlock()
	select {
	case l.signal <- struct{}{}:
	default:
	}
}

func (l *lane) run() {
	var batch []laneItem
	for {
		select {
		case <-l.signal:
		case <-l.done:
			return
		}
		l.mu.Lock()
		batch, l.queue = l.queue, batch[:0]
		l.mu.Unlock()
		for i := range batch {
			it := batch[i]
			batch[i] = laneItem{}
			// The group is looked up per request: a replica stopped and
			// started again registers a new transport.
			rt := l.t.raftGroup(l.group)
			if rt == nil {
				respondRPC(l.w, it.f, nil, fmt.Errorf("consensus: no replica of %s here", groupName(groupShard(l.group))))
				continue
			}
			if !rt.dispatch(it.rpc, l.w, it.f, l.done) {
				return
			}
		}
	}
}

func groupShard(g uint16) int {
	if g == metaGroupID {
		return -1
	}
	return int(g)
}
