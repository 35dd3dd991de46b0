package proxy

import (
	"net"
	"net/netip"
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

// sendFinal sends a final response outside sipgo's server transaction
// where the transaction has nothing left to do, ends the transaction, and
// reports whether it did; otherwise the caller responds through it.
//
// A non-INVITE request received over UDP: RFC 3261 §17.2.2 keeps its
// transaction for Timer J (32 s) only to answer retransmissions with the
// same response, so the core serializes the response once, sends those
// bytes and keeps them for retransmissions instead.
//
// An INVITE answered with a 2xx: the 2xx is the TU's to send and to
// retransmit (RFC 6026). Through sipgo's accepted state it would arm Timer
// L, which Terminate does not stop, keeping the transaction, and through
// its CANCEL hook every hop of the call, for 32 s. Over UDP an empty entry
// stands for the accepted state, which only absorbs retransmissions of the
// INVITE.
func (c *Core) sendFinal(req *sip.Request, tx *sip.ServerTx, res *sip.Response) bool {
	invite2xx := req.IsInvite() && res.IsSuccess()
	if req.IsInvite() && !invite2xx {
		return false // completed until its ACK, which sipgo handles
	}
	var key string // of a UDP transaction whose answer is kept
	if c.answered != nil && strings.EqualFold(req.Transport(), "UDP") {
		key, _ = sip.ServerTxKeyMake(req)
	}
	// The answer is kept before it leaves, so that a retransmission sent
	// the moment the response arrives finds it.
	if invite2xx {
		if key != "" {
			c.answered.add(key, nil)
		}
		if err := tx.Connection().WriteMsg(res); err != nil {
			c.log.Debug("response not sent", "status", res.StatusCode, "err", err)
		}
	} else {
		w, ok := tx.Connection().(udpWriter)
		if key == "" || !ok {
			return false
		}
		b := []byte(res.String())
		c.answered.add(key, b)
		c.writeUDP(w, b, req.Source())
	}
	tx.Terminate()
	return true
}

func (c *Core) writeUDP(w udpWriter, b []byte, dst string) {
	ap, err := netip.ParseAddrPort(dst)
	if err != nil {
		c.log.Debug("response not sent", "dst", dst, "err", err)
		return
	}
	if _, err := w.WriteTo(b, net.UDPAddrFromAddrPort(ap)); err != nil {
		c.log.Debug("response not sent", "dst", dst, "err", err)
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
	c.writeUDP(w, res, req.Source())
	tx.Terminate()
	return true
}
