package proxy

import (
	"net"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"
)

// answerCache stands in for the completed non-INVITE server transactions of
// requests received over UDP, and for accepted INVITE ones. RFC 3261
// §17.2.2 keeps such a transaction for Timer J (64*T1, 32 s) only to answer
// retransmissions of its request with the same final response. sipgo keeps the whole transaction for that time,
// parsed request and response included: at a few thousand requests a second
// that was most of the live heap and a fifth of the CPU went to collecting
// it. Here the core keeps the response's bytes instead and ends the
// transaction at once.
type answerCache struct {
	ttl time.Duration
	now func() time.Time

	mu    sync.Mutex
	m     map[string]answer
	order []answeredKey // insertion order; every entry has the same ttl
	head  int
}

type answer struct {
	res     []byte
	expires time.Time
}

type answeredKey struct {
	key     string
	expires time.Time
}

func newAnswerCache(ttl time.Duration, now func() time.Time) *answerCache {
	return &answerCache{ttl: ttl, now: now, m: map[string]answer{}}
}

// add remembers the final response sent for the transaction key.
func (a *answerCache) add(key string, res []byte) {
	now := a.now()
	exp := now.Add(a.ttl)
	a.mu.Lock()
	defer a.mu.Unlock()
	a.expireLocked(now)
	a.m[key] = answer{res: res, expires: exp}
	a.order = append(a.order, answeredKey{key: key, expires: exp})
}

// lookup returns the final response already sent for key, if it is still
// kept.
func (a *answerCache) lookup(key string) ([]byte, bool) {
	now := a.now()
	a.mu.Lock()
	defer a.mu.Unlock()
	a.expireLocked(now)
	e, ok := a.m[key]
	if !ok || !now.Before(e.expires) {
		return nil, false
	}
	return e.res, true
}

func (a *answerCache) len() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.m)
}

func (a *answerCache) expireLocked(now time.Time) {
	for a.head < len(a.order) && !now.Before(a.order[a.head].expires) {
		k := a.order[a.head]
		if e, ok := a.m[k.key]; ok && !e.expires.After(k.expires) {
			delete(a.m, k.key)
		}
		a.order[a.head] = answeredKey{}
		a.head++
	}
	if a.head > 1024 && a.head > len(a.order)/2 {
		n := copy(a.order, a.order[a.head:])
		clear(a.order[n:])
		a.order = a.order[:n]
		a.head = 0
	}
}

// udpWriter is what sipgo's UDP connections offer for raw sends.
type udpWriter interface {
	WriteTo(b []byte, addr net.Addr) (int, error)
}

// keepAnswer is called after a final response went out on a server
// transaction: for a non-INVITE request received over UDP it keeps the
// response's bytes to answer retransmissions and ends the transaction.
//
// An INVITE answered with a 2xx is ended the same way: RFC 6026's accepted
// state only absorbs retransmissions of the INVITE (2xx retransmissions are
// the UAS's, relayed statelessly), so an empty entry stands for it.
func (c *Core) keepAnswer(req *sip.Request, t sip.ServerTransaction, res *sip.Response) {
	if res.StatusCode < 200 || req.IsAck() {
		return
	}
	invite2xx := req.IsInvite() && res.IsSuccess()
	if req.IsInvite() && !invite2xx {
		return // completed until its ACK, which sipgo handles
	}
	tx, ok := t.(*sip.ServerTx)
	if !ok {
		return
	}
	if invite2xx {
		// Ends however the entry below fares: a 2xx left the transaction
		// in its proceeding state.
		defer tx.Terminate()
	}
	if c.answered == nil || !strings.EqualFold(req.Transport(), "UDP") {
		return // no retransmissions over a reliable transport
	}
	if _, ok := tx.Connection().(udpWriter); !ok {
		return
	}
	key, err := sip.ServerTxKeyMake(req)
	if err != nil {
		return
	}
	var b []byte
	if !invite2xx {
		b = []byte(res.String())
	}
	c.answered.add(key, b)
	if !invite2xx {
		tx.Terminate()
	}
}

// answerAgain resends the kept final response to a retransmitted request;
// it reports whether req was one.
func (c *Core) answerAgain(req *sip.Request, tx *sip.ServerTx) bool {
	if c.answered == nil || req.IsAck() || !strings.EqualFold(req.Transport(), "UDP") {
		return false
	}
	key, err := sip.ServerTxKeyMake(req)
	if err != nil {
		return false
	}
	res, ok := c.answered.lookup(key)
	if !ok {
		return false
	}
	if len(res) == 0 {
		tx.Terminate() // an INVITE already accepted: absorbed
		return true
	}
	w, ok := tx.Connection().(udpWriter)
	if !ok {
		return false
	}
	if addr, err := net.ResolveUDPAddr("udp", req.Source()); err == nil {
		if _, err := w.WriteTo(res, addr); err != nil {
			c.log.Debug("retransmitted response not sent", "err", err)
		}
	}
	tx.Terminate()
	return true
}
