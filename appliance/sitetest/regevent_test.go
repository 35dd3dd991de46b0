package sitetest

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"stillwater/bench/sipp"
)

// goUE is a minimal UE built on sipgo: it sends from and listens on one
// UDP port, so requests the network sends it come back over its flow.
type goUE struct {
	user   sipp.User
	port   int
	client *sipgo.Client
	proxy  string
	notify chan *sip.Request
}

func newGoUE(t *testing.T, ctx context.Context, u sipp.User, proxy string) *goUE {
	t.Helper()
	port, err := sipp.FreePort("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	ua, err := sipgo.NewUA(sipgo.WithUserAgent("stillwater-test-ue"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ua.Close() })
	srv, err := sipgo.NewServer(ua)
	if err != nil {
		t.Fatal(err)
	}
	ue := &goUE{user: u, port: port, proxy: proxy, notify: make(chan *sip.Request, 16)}
	srv.OnNotify(func(req *sip.Request, tx sip.ServerTransaction) {
		tx.Respond(sip.NewResponseFromRequest(req, 200, "OK", nil))
		ue.notify <- req
	})
	lctx, cancel := context.WithCancel(ctx)
	t.Cleanup(cancel)
	ready := make(chan struct{})
	go srv.ListenAndServe(context.WithValue(lctx, sipgo.ListenReadyCtxKey, sipgo.ListenReadyFuncCtxValue(func(string, string) { close(ready) })),
		"udp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	select {
	case <-ready:
	case <-ctx.Done():
		t.Fatal("UE listener did not start")
	}
	ue.client, err = sipgo.NewClient(ua, sipgo.WithClientHostname("127.0.0.1"), sipgo.WithClientPort(port),
		sipgo.WithClientConnectionAddr(net.JoinHostPort("127.0.0.1", strconv.Itoa(port))))
	if err != nil {
		t.Fatal(err)
	}
	return ue
}

func (ue *goUE) aor() string { return "sip:" + ue.user.Name + "@" + ue.user.Domain }

func (ue *goUE) contact() string {
	return fmt.Sprintf("<sip:%s@127.0.0.1:%d>", ue.user.Name, ue.port)
}

// request builds a request to ruri through the P-CSCF.
func (ue *goUE) request(method sip.RequestMethod, ruri string, hdrs ...sip.Header) *sip.Request {
	var u sip.Uri
	sip.ParseUri(ruri, &u)
	req := sip.NewRequest(method, u)
	req.SetDestination(ue.proxy)
	req.AppendHeader(sip.NewHeader("From", "<"+ue.aor()+">;tag="+strconv.FormatInt(time.Now().UnixNano(), 36)))
	req.AppendHeader(sip.NewHeader("To", "<"+ue.aor()+">"))
	req.AppendHeader(sip.NewHeader("Contact", ue.contact()))
	for _, h := range hdrs {
		req.AppendHeader(h)
	}
	return req
}

// do sends req and answers a digest challenge.
func (ue *goUE) do(ctx context.Context, req *sip.Request) (*sip.Response, error) {
	res, err := ue.client.Do(ctx, req)
	if err != nil {
		return nil, err
	}
	if res.StatusCode == 401 || res.StatusCode == 407 {
		return ue.client.DoDigestAuth(ctx, req, res, sipgo.DigestAuth{Username: ue.user.AuthName, Password: ue.user.Password})
	}
	return res, nil
}

func (ue *goUE) register(ctx context.Context, expires int) error {
	req := ue.request(sip.REGISTER, "sip:"+ue.user.Domain, sip.NewHeader("Expires", strconv.Itoa(expires)))
	res, err := ue.do(ctx, req)
	if err != nil {
		return err
	}
	if res.StatusCode != 200 {
		return fmt.Errorf("REGISTER: %d %s", res.StatusCode, res.Reason)
	}
	return nil
}

func (ue *goUE) waitNotify(ctx context.Context, want ...string) (*sip.Request, error) {
	for {
		select {
		case n := <-ue.notify:
			body := string(n.Body())
			ok := true
			for _, w := range want {
				if !strings.Contains(body, w) {
					ok = false
				}
			}
			if ok {
				return n, nil
			}
		case <-ctx.Done():
			return nil, fmt.Errorf("no NOTIFY containing %q: %w", want, ctx.Err())
		}
	}
}

// TestRegEvent: a UE subscribes to its own registration state through the
// P-CSCF; the S-CSCF's NOTIFYs reach it over its flow with the full
// reginfo, and de-registration is notified.
func TestRegEvent(t *testing.T) {
	skipIfShort(t)
	s := newSite(t, siteOpts{nodes: 1, shared: imsShared})
	n := s.node(1)
	u := sipUsers(t, n, 6505554000, 1)[0]
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ue := newGoUE(t, ctx, u, n.sipTarget())
	if err := ue.register(ctx, 300); err != nil {
		t.Fatal(err)
	}
	sub := ue.request(sip.SUBSCRIBE, ue.aor(), sip.NewHeader("Event", "reg"),
		sip.NewHeader("Accept", "application/reginfo+xml"), sip.NewHeader("Expires", "600"))
	res, err := ue.do(ctx, sub)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != 200 {
		t.Fatalf("SUBSCRIBE: %d %s", res.StatusCode, res.Reason)
	}
	first, err := ue.waitNotify(ctx, `state="full"`, ue.aor(), `state="active"`)
	if err != nil {
		t.Fatal(err)
	}
	if ss := first.GetHeader("Subscription-State"); ss == nil || !strings.HasPrefix(ss.Value(), "active") {
		t.Errorf("first NOTIFY Subscription-State %v, want active", ss)
	}
	if ct := first.ContentType(); ct == nil || ct.Value() != "application/reginfo+xml" {
		t.Errorf("first NOTIFY Content-Type %v", ct)
	}
	if err := ue.register(ctx, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := ue.waitNotify(ctx, `state="terminated"`); err != nil {
		t.Fatal(err)
	}
}
