package sitetest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"stillwater/bench/sipp"
)

// testUE is a UE on 127.0.0.1, built on sipgo, that registers through the
// P-CSCF and sends from its registered flow: its client and server share
// one port (UDP and TCP), so that what the network sends it arrives over
// its flow. It answers the calls it is sent (200 OK unless told
// otherwise) and keeps every INVITE, ACK, BYE, CANCEL and NOTIFY it gets.
type testUE struct {
	user   sipp.User
	port   int
	proxy  string
	client *sipgo.Client
	dialog *sipgo.DialogUA

	invites  received[*sip.Request]
	acks     received[*sip.Request]
	byes     received[*sip.Request]
	cancels  received[*sip.Request]
	notifies received[*sip.Request]

	mu       sync.Mutex
	answer   func(req *sip.Request, tx sip.ServerTransaction) // nil: 200 OK
	notified int                                              // NOTIFYs waitNotify has passed
}

func newTestUE(t *testing.T, u sipp.User, proxy string) *testUE {
	t.Helper()
	ua, srv := newSIPAgent(t, "stillwater-test-ue", "127.0.0.1")
	ue := &testUE{user: u, proxy: proxy}
	ue.port = sipListen(t, srv, "127.0.0.1")
	var err error
	ue.client, err = sipgo.NewClient(ua, sipgo.WithClientHostname("127.0.0.1"), sipgo.WithClientPort(ue.port),
		sipgo.WithClientConnectionAddr(net.JoinHostPort("127.0.0.1", strconv.Itoa(ue.port))))
	if err != nil {
		t.Fatal(err)
	}
	ue.dialog = &sipgo.DialogUA{Client: ue.client, ContactHDR: sip.ContactHeader{Address: ue.contactURI()}}
	srv.OnInvite(func(req *sip.Request, tx sip.ServerTransaction) {
		ue.invites.add(req.Clone())
		ue.mu.Lock()
		answer := ue.answer
		ue.mu.Unlock()
		if answer != nil {
			answer(req, tx)
			return
		}
		res := sip.NewResponseFromRequest(req, 200, "OK", nil)
		res.AppendHeader(&sip.ContactHeader{Address: ue.contactURI()})
		tx.Respond(res)
	})
	srv.OnAck(func(req *sip.Request, _ sip.ServerTransaction) { ue.acks.add(req) })
	srv.OnBye(func(req *sip.Request, tx sip.ServerTransaction) {
		ue.byes.add(req)
		tx.Respond(sip.NewResponseFromRequest(req, 200, "OK", nil))
	})
	srv.OnNotify(func(req *sip.Request, tx sip.ServerTransaction) {
		tx.Respond(sip.NewResponseFromRequest(req, 200, "OK", nil))
		ue.notifies.add(req.Clone())
	})
	return ue
}

// registeredUE starts a UE for u and registers it.
func registeredUE(t *testing.T, ctx context.Context, n *node, u sipp.User) *testUE {
	t.Helper()
	ue := newTestUE(t, u, n.sipTarget())
	if err := ue.register(ctx, 300); err != nil {
		t.Fatal(err)
	}
	return ue
}

func (ue *testUE) aor() string { return "sip:" + ue.user.Name + "@" + ue.user.Domain }

func (ue *testUE) contactURI() sip.Uri {
	return sip.Uri{Scheme: "sip", User: ue.user.Name, Host: "127.0.0.1", Port: ue.port}
}

// answers sets how the UE answers INVITEs; nil is 200 OK.
func (ue *testUE) answers(f func(req *sip.Request, tx sip.ServerTransaction)) {
	ue.mu.Lock()
	ue.answer = f
	ue.mu.Unlock()
}

// request builds a request about the UE's own AOR (its From and To), such
// as a REGISTER or a SUBSCRIBE to its registration state, sent to ruri
// through the P-CSCF.
func (ue *testUE) request(method sip.RequestMethod, ruri string, hdrs ...sip.Header) *sip.Request {
	var u sip.Uri
	sip.ParseUri(ruri, &u)
	req := sip.NewRequest(method, u)
	req.SetDestination(ue.proxy)
	req.AppendHeader(sip.NewHeader("From", "<"+ue.aor()+">;tag="+sip.GenerateTagN(16)))
	req.AppendHeader(sip.NewHeader("To", "<"+ue.aor()+">"))
	req.AppendHeader(&sip.ContactHeader{Address: ue.contactURI()})
	for _, h := range hdrs {
		req.AppendHeader(h)
	}
	return req
}

// do sends req and answers a digest challenge.
func (ue *testUE) do(ctx context.Context, req *sip.Request) (*sip.Response, error) {
	res, err := ue.client.Do(ctx, req)
	if err != nil {
		return nil, err
	}
	if res.StatusCode == 401 || res.StatusCode == 407 {
		return ue.client.DoDigestAuth(ctx, req, res, sipgo.DigestAuth{Username: ue.user.AuthName, Password: ue.user.Password})
	}
	return res, nil
}

// register registers (or with expires 0 de-registers) the UE, answering
// the digest challenge.
func (ue *testUE) register(ctx context.Context, expires int) error {
	req := ue.request(sip.REGISTER, "sip:"+ue.user.Domain, sip.NewHeader("Expires", strconv.Itoa(expires)))
	res, err := ue.do(ctx, req)
	if err != nil {
		return fmt.Errorf("REGISTER %s (expires %d): %w", ue.aor(), expires, err)
	}
	if res.StatusCode != 200 {
		return fmt.Errorf("REGISTER %s (expires %d): %d %s", ue.aor(), expires, res.StatusCode, res.Reason)
	}
	return nil
}

// waitNotify returns the first NOTIFY, after those it returned before,
// whose body contains every one of want.
func (ue *testUE) waitNotify(ctx context.Context, want ...string) (*sip.Request, error) {
	ue.mu.Lock()
	from := ue.notified
	ue.mu.Unlock()
	found := -1
	ns, err := ue.notifies.wait(ctx, fmt.Sprintf("a NOTIFY containing %q", want), func(ns []*sip.Request) bool {
		for i := from; i < len(ns); i++ {
			body := string(ns[i].Body())
			ok := true
			for _, w := range want {
				ok = ok && strings.Contains(body, w)
			}
			if ok {
				found = i
				return true
			}
		}
		return false
	})
	if err != nil {
		return nil, err
	}
	ue.mu.Lock()
	ue.notified = found + 1
	ue.mu.Unlock()
	return ns[found], nil
}

// call is an INVITE the UE sent and where it ended.
type call struct {
	invite *sip.Request
	final  *sip.Response
	leg    *sipgo.DialogClientSession // set when answered 2xx (and ACKed)
}

// call sends an INVITE to ruri through the P-CSCF and returns its final
// response; a 2xx is acknowledged.
func (ue *testUE) call(ctx context.Context, ruri string) (*call, error) {
	var u sip.Uri
	if err := sip.ParseUri(ruri, &u); err != nil {
		return nil, fmt.Errorf("call %s: %w", ruri, err)
	}
	req := sip.NewRequest(sip.INVITE, u)
	req.SetDestination(ue.proxy)
	req.AppendHeader(sip.NewHeader("From", "<"+ue.aor()+">;tag="+sip.GenerateTagN(16)))
	req.AppendHeader(sip.NewHeader("To", "<"+ruri+">"))
	req.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	req.SetBody([]byte(ueSDP))
	leg, err := ue.dialog.WriteInvite(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("INVITE %s: %w", ruri, err)
	}
	c := &call{invite: leg.InviteRequest}
	err = leg.WaitAnswer(ctx, sipgo.AnswerOptions{})
	var failed *sipgo.ErrDialogResponse
	switch {
	case errors.As(err, &failed):
		c.final = failed.Res
		return c, nil
	case err != nil:
		return nil, fmt.Errorf("INVITE %s: %w", ruri, err)
	}
	c.final, c.leg = leg.InviteResponse, leg
	if err := leg.Ack(ctx); err != nil {
		return c, fmt.Errorf("ACK to %s: %w", ruri, err)
	}
	return c, nil
}

// hangUp sends BYE in an answered call and waits for its 200.
func (ue *testUE) hangUp(ctx context.Context, c *call) error {
	if c.leg == nil {
		return errors.New("BYE: the call was not answered")
	}
	bye := sip.NewRequest(sip.BYE, c.final.Contact().Address)
	bye.Laddr = c.invite.Laddr
	if err := c.leg.WriteBye(ctx, bye); err != nil {
		return fmt.Errorf("BYE: %w", err)
	}
	return nil
}

// Offers the UE makes.
const (
	ueSDP      = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n"
	ueVideoSDP = ueSDP + "m=video 4002 RTP/AVP 96\r\n"
)

// invite sends an INVITE with offer sdp to ruri through the P-CSCF, as
// "Caller", and returns every response it draws, the final one last. It is
// for calls that fail: a 2xx is not acknowledged.
func (ue *testUE) invite(ctx context.Context, ruri, sdp string, hdrs ...sip.Header) ([]*sip.Response, error) {
	var u sip.Uri
	if err := sip.ParseUri(ruri, &u); err != nil {
		return nil, fmt.Errorf("INVITE %s: %w", ruri, err)
	}
	req := sip.NewRequest(sip.INVITE, u)
	req.SetDestination(ue.proxy)
	req.AppendHeader(sip.NewHeader("From", `"Caller" <`+ue.aor()+">;tag="+sip.GenerateTagN(16)))
	req.AppendHeader(sip.NewHeader("To", "<"+ruri+">"))
	req.AppendHeader(&sip.ContactHeader{Address: ue.contactURI()})
	req.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	for _, h := range hdrs {
		req.AppendHeader(h)
	}
	req.SetBody([]byte(sdp))
	tx, err := ue.client.TransactionRequest(ctx, req)
	if err != nil {
		return nil, err
	}
	defer tx.Terminate()
	var out []*sip.Response
	for {
		select {
		case res := <-tx.Responses():
			out = append(out, res)
			if res.StatusCode >= 200 {
				return out, nil
			}
		case <-tx.Done():
			return out, fmt.Errorf("INVITE %s: transaction ended: %v", ruri, tx.Err())
		case <-ctx.Done():
			return out, ctx.Err()
		}
	}
}

// busyHere answers an INVITE 486 Busy Here.
func busyHere(req *sip.Request, tx sip.ServerTransaction) {
	tx.Respond(sip.NewResponseFromRequest(req, 486, "Busy Here", nil))
}

// ringForever answers 180 and keeps ringing until the caller's side
// cancels.
func (ue *testUE) ringForever(req *sip.Request, tx sip.ServerTransaction) {
	res := sip.NewResponseFromRequest(req, 180, "Ringing", nil)
	res.To().Params.Add("tag", "ring"+strconv.Itoa(ue.port))
	tx.OnCancel(func(c *sip.Request) { ue.cancels.add(c) })
	tx.Respond(res)
	select {
	case <-tx.Done():
	case <-time.After(time.Minute):
	}
}

// inCall waits for a request of callID among l.
func inCall(ctx context.Context, l *received[*sip.Request], callID string) (*sip.Request, error) {
	var found *sip.Request
	_, err := l.wait(ctx, "a request of call "+callID, func(rs []*sip.Request) bool {
		for _, r := range rs {
			if r.CallID().Value() == callID {
				found = r
				return true
			}
		}
		return false
	})
	return found, err
}

// noReq checks the UE was sent no INVITE of the call; the call has ended,
// so anything it was sent has arrived.
func noReq(t *testing.T, ue *testUE, callID string) {
	t.Helper()
	for _, r := range ue.invites.all() {
		if r.CallID().Value() == callID {
			t.Errorf("%s was sent the INVITE", ue.user.Name)
		}
	}
}
