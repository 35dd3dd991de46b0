package proxy

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo/sip"
)

// acceptWatch lets a 2xx to an INVITE the core sent bypass sipgo's client
// transaction. Once that transaction has seen a 2xx it arms Timer M (RFC
// 6026, 32 s), which its Terminate does not stop, so the request and the
// response stayed in memory for 32 s after every answered call. A 2xx needs
// no transaction: the branch takes it, and its retransmissions are relayed
// statelessly (RFC 3261 §16.7).
type acceptWatch struct {
	key      string
	ready    chan struct{} // closed once tx is set, or the send failed
	tx       *sip.ClientTx // nil if the send failed
	taken    atomic.Bool
	accepted chan *sip.Response

	mu   sync.Mutex
	gone bool // the branch stopped listening
}

// watchAccept registers an INVITE for takeAccepted before it is sent: a
// UAS that answers at once must not find sipgo's transaction unwatched, or
// the 2xx would put it in its accepted state after all. The caller passes
// the transaction to sent once the send returns.
func (c *Core) watchAccept(req *sip.Request) *acceptWatch {
	key, err := sip.ClientTxKeyMake(req)
	if err != nil {
		return nil
	}
	w := &acceptWatch{key: key, ready: make(chan struct{}), accepted: make(chan *sip.Response, 1)}
	c.accepting.Store(key, w)
	return w
}

// sent records the transaction of a watched INVITE; tx nil (a failed send,
// or a transaction that is not sipgo's own) ends the watch.
func (c *Core) sent(w *acceptWatch, tx sip.ClientTransaction) {
	if w == nil {
		return
	}
	ctx, _ := tx.(*sip.ClientTx)
	w.tx = ctx
	close(w.ready)
	if ctx == nil {
		c.unwatchAccept(w)
	}
}

func (c *Core) unwatchAccept(w *acceptWatch) {
	if w == nil {
		return
	}
	c.accepting.CompareAndDelete(w.key, w)
	w.mu.Lock()
	w.gone = true
	w.mu.Unlock()
}

// sendWait bounds how long takeAccepted waits for a watched INVITE's send
// to return; it has written the request already, as its answer is here.
const sendWait = time.Second

// takeAccepted runs on every received message before the transaction layer
// sees it. A 2xx for a watched INVITE ends the transaction first, so the
// transaction layer finds none and hands the response to onStrayResponse,
// which gives it to the branch (the layer has finished reading it by then).
func (c *Core) takeAccepted(msg sip.Message) {
	res, ok := msg.(*sip.Response)
	if !ok || !res.IsSuccess() {
		return
	}
	if cs := res.CSeq(); cs == nil || cs.MethodName != sip.INVITE {
		return
	}
	key, err := sip.ClientTxKeyMake(res)
	if err != nil {
		return
	}
	v, ok := c.accepting.LoadAndDelete(key)
	if !ok {
		return
	}
	w := v.(*acceptWatch)
	select {
	case <-w.ready:
	case <-time.After(sendWait):
		return // the transaction takes it, as without a watch
	}
	if w.tx == nil {
		return
	}
	w.taken.Store(true)
	c.taken.Store(res, w)
	w.tx.Terminate()
}

// claimTaken delivers res to the branch whose transaction takeAccepted
// ended for it, and reports whether it did. A branch that stopped
// listening meanwhile (its transaction had just failed) leaves the 2xx to
// the stateless relay.
func (c *Core) claimTaken(res *sip.Response) bool {
	v, ok := c.taken.LoadAndDelete(res)
	if !ok {
		return false
	}
	w := v.(*acceptWatch)
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.gone {
		return false
	}
	w.accepted <- res // buffered: one 2xx per transaction is taken
	return true
}
