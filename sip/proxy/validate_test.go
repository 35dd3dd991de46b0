package proxy

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/emiago/sipgo/sip"

	"stillwater/sip/siptest/endpoint"
)

func TestOptionsPoll(t *testing.T) {
	r := newRig(t, Config{UserAgent: "Stillwater-test"}, "", nil)
	ue := endpoint.New(t, endpoint.RemoteIP, "uas")
	uas := endpoint.New(t, endpoint.RemoteIP, "uas")
	local := fmt.Sprintf("sip:127.0.0.1:%d", r.udp)
	cases := []struct {
		name    string
		ruri    string
		extra   []string
		forward bool
	}{
		{name: "no route", ruri: local},
		{name: "one local route", ruri: "sip:127.0.0.1", extra: []string{"Route: <" + local + ";lr>"}},
		{name: "max-forwards 0 poll", ruri: local, extra: []string{"Max-Forwards: 0"}},
		{name: "non-local uri", ruri: uas.URI("bob"), forward: true},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ue, uas := ue.On(t), uas.On(t)
			callID := fmt.Sprintf("opt%d", i)
			text := simple(ue, "OPTIONS", callID, tc.ruri, tc.extra...)
			if len(tc.extra) > 0 && strings.HasPrefix(tc.extra[0], "Max-Forwards") {
				text = strings.Replace(text, "Max-Forwards: 70\r\n", "", 1)
			}
			ue.Send(r.udpAddr(), text)
			if tc.forward {
				got := uas.Request(sip.OPTIONS)
				if got.Req().CallID().Value() != callID {
					t.Fatalf("UAS got %s", got.Req().CallID().Value())
				}
				if mf := got.Req().MaxForwards().Val(); mf != 69 {
					t.Errorf("Max-Forwards = %d, want 69", mf)
				}
				uas.Answer(got, 200, "OK")
			}
			res := ue.Response(callID, sip.OPTIONS, 0)
			if res.Res().StatusCode != 200 {
				t.Fatalf("status %d, want 200", res.Res().StatusCode)
			}
			allow := res.Res().GetHeader("Allow")
			if tc.forward != (allow == nil) {
				t.Errorf("Allow = %v: the node answered a forwarded OPTIONS itself, or did not answer its poll", allow)
			}
		})
	}
	// The node's own answer, as the poller sees it.
	callID := "optgolden"
	ue.Send(r.udpAddr(), simple(ue, "OPTIONS", callID, local))
	res := ue.Response(callID, sip.OPTIONS, 200)
	// sipgo's server transaction adds a random To tag of its own.
	raw := uuidTag.ReplaceAllString(res.Raw, "tag=TOTAG")
	golden(t, "options-200.golden", mask(raw, map[string]string{
		ue.Addr(): "UE", fmt.Sprint(ue.Port()): "UEPORT", fmt.Sprint(r.udp): "COREPORT",
	}))
}

var uuidTag = regexp.MustCompile(`tag=[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`)

// mask replaces each key of repl with its value, longest keys first, and
// turns CRLF into LF for readable golden files.
func mask(s string, repl map[string]string) string {
	keys := make([]string, 0, len(repl))
	for k := range repl {
		keys = append(keys, k)
	}
	for i := range keys {
		for j := i + 1; j < len(keys); j++ {
			if len(keys[j]) > len(keys[i]) {
				keys[i], keys[j] = keys[j], keys[i]
			}
		}
	}
	for _, k := range keys {
		s = strings.ReplaceAll(s, k, repl[k])
	}
	return strings.ReplaceAll(s, "\r\n", "\n")
}

func TestRequestValidation(t *testing.T) {
	svc := ServiceFunc(func(tx *Txn) { tx.Reply(603, "Processed") })
	r := newRig(t, Config{}, "svc", map[string]Service{"svc": svc})
	ue := endpoint.New(t, endpoint.RemoteIP, "uas")
	cases := []struct {
		name        string
		method      string
		ruri        string
		extra       []string
		noMF        bool
		code        int
		unsupported string
	}{
		{name: "max-forwards 0", method: "MESSAGE", ruri: "sip:bob@example.com", extra: []string{"Max-Forwards: 0"}, noMF: true, code: 483},
		{name: "max-forwards 0 invite", method: "INVITE", ruri: "sip:bob@example.com", extra: []string{"Max-Forwards: 0"}, noMF: true, code: 483},
		{name: "unknown proxy-require", method: "MESSAGE", ruri: "sip:bob@example.com", extra: []string{"Proxy-Require: foo, path"}, code: 420, unsupported: "foo"},
		{name: "known proxy-require", method: "MESSAGE", ruri: "sip:bob@example.com", extra: []string{"Proxy-Require: path, outbound"}, code: 603},
		{name: "require is for the uas", method: "MESSAGE", ruri: "sip:bob@example.com", extra: []string{"Require: foo"}, code: 603},
		{name: "unknown scheme", method: "MESSAGE", ruri: "nosuch:bob@example.com", code: 416},
		{name: "valid", method: "MESSAGE", ruri: "sip:bob@example.com", code: 603},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ue := ue.On(t)
			callID := fmt.Sprintf("val%d", i)
			var text string
			if tc.method == "INVITE" {
				text = invite(ue, callID, tc.ruri, tc.extra...)
			} else {
				text = simple(ue, tc.method, callID, tc.ruri, tc.extra...)
			}
			if tc.noMF {
				text = strings.Replace(text, "Max-Forwards: 70\r\n", "", 1)
			}
			ue.Send(r.udpAddr(), text)
			res := ue.Response(callID, sip.RequestMethod(tc.method), 0).Res()
			if res.StatusCode != tc.code {
				t.Fatalf("status %d %s, want %d", res.StatusCode, res.Reason, tc.code)
			}
			if tc.unsupported != "" {
				if h := res.GetHeader("Unsupported"); h == nil || h.Value() != tc.unsupported {
					t.Errorf("Unsupported = %v, want %q", h, tc.unsupported)
				}
			}
			if tc.method == "INVITE" {
				ue.AckFailure(text, res, r.udpAddr())
			}
		})
	}
}

// TestLoopAndSpiral sends a forwarded request back to the node: unchanged
// it is a loop (482); with a new Request-URI it is a spiral and proceeds.
func TestLoopAndSpiral(t *testing.T) {
	r := newRig(t, Config{}, "", nil)
	ue := endpoint.New(t, endpoint.RemoteIP, "uas")
	bouncer := endpoint.New(t, endpoint.RemoteIP, "uas")
	final := endpoint.New(t, endpoint.RemoteIP, "uas")
	cases := []struct {
		name    string
		newRURI string
		code    int
	}{
		{name: "loop", code: 482},
		{name: "spiral", newRURI: final.URI("carol"), code: 202},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ue, bouncer, final := ue.On(t), bouncer.On(t), final.On(t)
			callID := fmt.Sprintf("loop%d", i)
			ue.Send(r.udpAddr(), simple(ue, "MESSAGE", callID, bouncer.URI("bob")))
			got := bouncer.Request(sip.MESSAGE)
			// The bouncer proxies the request straight back to the node.
			back := got.Req().Clone()
			v := &sip.ViaHeader{ProtocolName: "SIP", ProtocolVersion: "2.0", Transport: "UDP", Host: endpoint.RemoteIP,
				Port: bouncer.Port(), Params: sip.NewParams()}
			v.Params.Add("branch", "z9hG4bKbounce"+callID)
			back.PrependHeader(v)
			if tc.newRURI != "" {
				back.Recipient = mustURI(t, tc.newRURI)
			}
			bouncer.Send(r.udpAddr(), back)
			if tc.newRURI != "" {
				fin := final.Request(sip.MESSAGE)
				if n := len(fin.Req().GetHeaders("Via")); n != 4 {
					t.Errorf("spiralled request has %d Vias, want 4", n)
				}
				final.Answer(fin, 202, "Accepted")
			}
			res := bouncer.Response(callID, sip.MESSAGE, 0).Res()
			if res.StatusCode != tc.code {
				t.Fatalf("bounced request got %d %s, want %d", res.StatusCode, res.Reason, tc.code)
			}
			bouncer.Answer(got, res.StatusCode, res.Reason)
			if up := ue.Response(callID, sip.MESSAGE, 0).Res(); up.StatusCode != tc.code {
				t.Errorf("caller got %d, want %d", up.StatusCode, tc.code)
			}
		})
	}
}

// tortureOutcome is what the running core does with an RFC 4475 message.
type tortureOutcome int

const (
	answered  tortureOutcome = iota // rejected with the code sipcheck expects
	processed                       // handed to the service
	dropped                         // no answer (unparseable, or a response)
)

// TestTorture sends sip/sipcheck's RFC 4475 messages over UDP to a running
// core: each gets sipcheck's status, reaches the service, or is dropped,
// and the core keeps answering polls throughout.
func TestTorture(t *testing.T) {
	svc := ServiceFunc(func(tx *Txn) { tx.Reply(699, "Processed") })
	cases := []struct {
		file    string
		outcome tortureOutcome
		code    int
	}{
		// sipgo's transaction layer answers 400 to a request whose Via
		// branch lacks the RFC 3261 cookie (wsinv's is "390skdjuw";
		// inv2543 has none), and
		// its parser upper-cases the method so that intmeth's no longer
		// matches its CSeq.
		{"valid/wsinv.sip", answered, 400},
		{"valid/intmeth.sip", answered, 400},
		{"valid/esc01.sip", processed, 0},
		{"valid/escnull.sip", processed, 0},
		{"valid/esc02.sip", processed, 0},
		{"valid/lwsdisp.sip", processed, 0},
		{"valid/longreq.sip", processed, 0},
		{"valid/dblreq.sip", processed, 0},
		{"valid/semiuri.sip", processed, 0},
		{"valid/transports.sip", processed, 0},
		{"valid/mpart01.sip", processed, 0},
		{"valid/unreason.sip", dropped, 0},
		{"valid/noreason.sip", dropped, 0},
		{"invalid/badinv01.sip", dropped, 400},
		{"invalid/clerr.sip", dropped, 400},
		{"invalid/ncl.sip", dropped, 400},
		{"invalid/scalar02.sip", dropped, 400},
		{"invalid/scalarlg.sip", dropped, 0},
		{"invalid/quotbal.sip", dropped, 400},
		{"invalid/ltgtruri.sip", dropped, 400},
		{"invalid/lwsruri.sip", dropped, 400},
		{"invalid/lwsstart.sip", dropped, 400},
		{"invalid/trws.sip", dropped, 400},
		{"invalid/escruri.sip", answered, 400},
		{"invalid/baddate.sip", answered, 400},
		{"invalid/regbadct.sip", processed, 0},
		{"invalid/badaspec.sip", dropped, 400},
		{"invalid/baddn.sip", processed, 0},
		{"invalid/badvers.sip", answered, 505},
		{"invalid/mismatch01.sip", answered, 400},
		{"invalid/mismatch02.sip", answered, 400},
		{"invalid/bigcode.sip", dropped, 0},
		{"semantic/insuf.sip", dropped, 400},
		{"semantic/unkscm.sip", answered, 416},
		{"semantic/novelsc.sip", dropped, 416},
		{"semantic/bext01.sip", answered, 420},
		{"semantic/multi01.sip", answered, 400},
		{"semantic/mcl01.sip", answered, 400},
		{"semantic/inv2543.sip", answered, 400},
		// An OPTIONS with Max-Forwards 0 may be answered by the proxy
		// itself (RFC 3261 §16.3 step 3): it goes to the service.
		{"semantic/zeromf.sip", processed, 0},
		{"semantic/regescrt.sip", processed, 0},
	}
	callIDRe := regexp.MustCompile(`(?mi)^(?:Call-ID|i)[ \t]*:[ \t]*(\S+)`)
	for i, tc := range cases {
		t.Run(tc.file, func(t *testing.T) {
			// A core of its own: several messages share a Via branch and
			// sent-by, which would make one a retransmission of another.
			r := newRig(t, Config{}, "svc", map[string]Service{"svc": svc})
			ue := endpoint.New(t, endpoint.RemoteIP, "uas")
			data, err := os.ReadFile(filepath.Join("..", "sipcheck", "testdata", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			// Every message's Call-ID starts with its name; multi01 has two.
			callID := ""
			if m := callIDRe.FindSubmatch(data); m != nil {
				callID, _, _ = strings.Cut(string(m[1]), ".")
			}
			ours := func(s *sip.Response) bool {
				return s != nil && s.CallID() != nil && callID != "" && strings.HasPrefix(s.CallID().Value(), callID+".")
			}
			ue.Send(r.udpAddr(), string(data))
			switch tc.outcome {
			case answered, processed:
				want := tc.code
				if tc.outcome == processed {
					want = 699
				}
				got := ue.Wait(fmt.Sprintf("%d for %s", want, tc.file), func(m endpoint.Rx) bool {
					s := m.Res()
					return ours(s) && s.StatusCode >= 200
				}).Res()
				if got.StatusCode != want {
					t.Errorf("status %d %s, want %d", got.StatusCode, got.Reason, want)
				}
			}
			// The node still answers a poll; for a dropped message nothing
			// has come back by then.
			poll := fmt.Sprintf("torturepoll%d", i)
			ue.Send(r.udpAddr(), simple(ue, "OPTIONS", poll, fmt.Sprintf("sip:127.0.0.1:%d", r.udp)))
			ue.Response(poll, sip.OPTIONS, 200)
			if tc.outcome == dropped && callID != "" {
				for _, m := range ue.Drain() {
					if s := m.Res(); ours(s) {
						t.Errorf("dropped message answered %d %s", s.StatusCode, s.Reason)
					}
				}
			}
		})
	}
}
