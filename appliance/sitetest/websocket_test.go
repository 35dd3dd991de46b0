package sitetest

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
)

// TestWebSocket: a WebRTC-style UE registers over SIP over WebSocket (RFC
// 7118) on the edge's WebSocket port and sends a MESSAGE through it to a UE
// on UDP.
func TestWebSocket(t *testing.T) {
	skipIfShort(t)
	s := newSite(t, siteOpts{nodes: 1, shared: imsShared})
	n := s.node(1)
	users := sipUsers(t, n, 6505555000, 2)
	ws, callee := users[0], users[1]
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	uas := sippCallee(t, ctx, n.sipTarget(), "u1", callee, "uas_message")

	ua, err := sipgo.NewUA(sipgo.WithUserAgent("stillwater-test-ws"))
	if err != nil {
		t.Fatal(err)
	}
	defer ua.Close()
	client, err := sipgo.NewClient(ua, sipgo.WithClientHostname("127.0.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	edge := net.JoinHostPort(n.ip, strconv.Itoa(s.ports.ws))
	aor := "sip:" + ws.Name + "@" + imsRealm
	send := func(method sip.RequestMethod, ruri string, hdrs ...sip.Header) *sip.Response {
		t.Helper()
		var u sip.Uri
		sip.ParseUri(ruri, &u)
		req := sip.NewRequest(method, u)
		req.SetTransport("WS")
		req.SetDestination(edge)
		req.AppendHeader(sip.NewHeader("From", "<"+aor+">;tag="+strconv.FormatInt(time.Now().UnixNano(), 36)))
		to := ruri
		if method == sip.REGISTER {
			to = aor
		}
		req.AppendHeader(sip.NewHeader("To", "<"+to+">"))
		req.AppendHeader(sip.NewHeader("Contact", "<sip:"+ws.Name+"@df7jal23ls0d.invalid;transport=ws>"))
		for _, h := range hdrs {
			req.AppendHeader(h)
		}
		res, err := client.Do(ctx, req)
		if err == nil && (res.StatusCode == 401 || res.StatusCode == 407) {
			res, err = client.DoDigestAuth(ctx, req, res, sipgo.DigestAuth{Username: ws.AuthName, Password: ws.Password})
		}
		if err != nil {
			t.Fatalf("%s over WebSocket: %v", method, err)
		}
		return res
	}
	if res := send(sip.REGISTER, "sip:"+imsRealm, sip.NewHeader("Expires", "300")); res.StatusCode != 200 {
		t.Fatalf("REGISTER over WebSocket: %d %s", res.StatusCode, res.Reason)
	}
	if b := n.bindings(t, aor); len(b) != 1 {
		t.Fatalf("bindings after a WebSocket registration: %d", len(b))
	}
	body := sip.NewHeader("Content-Type", "text/plain")
	res := send(sip.MESSAGE, fmt.Sprintf("sip:%s@%s", callee.Name, imsRealm), body)
	if res.StatusCode != 200 {
		t.Fatalf("MESSAGE from the WebSocket UE: %d %s", res.StatusCode, res.Reason)
	}
	if err := uas.WaitLog(ctx, "message", 1); err != nil {
		t.Fatalf("the UDP UE did not get the MESSAGE: %v", err)
	}
}
