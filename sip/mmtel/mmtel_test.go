package mmtel_test

import (
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"stillwater/sip/mmtel"
	"stillwater/sip/siptest"
	"stillwater/sip/siptest/endpoint"
)

// noAnswer is a hop's behaviour of ringing and never answering.
const noAnswer = -1

// hop is one UE the INVITE reaches in turn and what it answers: 180 first
// when ring is set, then code (a 302 names the deflection target).
type hop struct {
	e    *endpoint.Endpoint
	ring bool
	code int
	to   string // Contact of a 302
}

func diversion(rules ...mmtel.DiversionRule) *mmtel.Settings {
	return &mmtel.Settings{Diversion: &mmtel.Diversion{Rules: rules}}
}

func forward(target string, c mmtel.Conditions) mmtel.DiversionRule {
	return mmtel.DiversionRule{Target: target, Conditions: c, NotifyCaller: true}
}

func barAll() *mmtel.Barring { return &mmtel.Barring{Rules: []mmtel.BarringRule{{ID: "all"}}} }

// requireHeaders checks name's values: each want must be a substring of
// the value at the same position, and there must be as many.
func requireHeaders(t *testing.T, req *sip.Request, name string, want ...string) {
	t.Helper()
	got := endpoint.HeaderValues(req, name)
	if len(got) != len(want) {
		t.Errorf("%s: %q, want %d values like %q", name, got, len(want), want)
		return
	}
	for i := range want {
		if !strings.Contains(got[i], want[i]) {
			t.Errorf("%s[%d] = %q, want it to contain %q", name, i, got[i], want[i])
		}
	}
}

func requireAnonymousFrom(t *testing.T, req *sip.Request, callID string) {
	t.Helper()
	f := req.From()
	tag, _ := f.Params.Get("tag")
	if f.DisplayName != "Anonymous" || f.Address.String() != "sip:anonymous@anonymous.invalid" || tag != "f"+callID {
		t.Errorf("From %q, want \"Anonymous\" <sip:anonymous@anonymous.invalid> with tag f%s", f.Value(), callID)
	}
}

func requireFrom(t *testing.T, m interface{ From() *sip.FromHeader }, uri string) {
	t.Helper()
	if f := m.From(); f == nil || f.Address.String() != uri || f.DisplayName != "Caller" {
		t.Errorf("From %v, want \"Caller\" <%s>", f, uri)
	}
}

func privacyOf(req *sip.Request) []string {
	var out []string
	for _, v := range endpoint.HeaderValues(req, "Privacy") {
		for _, p := range strings.Split(v, ";") {
			out = append(out, strings.TrimSpace(p))
		}
	}
	return out
}

func TestMMTEL(t *testing.T) {
	s := newSite(t)
	caller, bobE, carolE, c5, c6 := siptest.NewUE(t), siptest.NewUE(t), siptest.NewUE(t), siptest.NewUE(t), siptest.NewUE(t)
	s.MustRegister(caller, siptest.Alice, "")
	s.MustRegister(bobE, siptest.Bob, "")
	s.MustRegister(carolE, carol, "")
	s.MustRegister(c5, chainUser(5), "")
	s.MustRegister(c6, chainUser(6), "")

	// chain forwards chainUser(i) unconditionally to chainUser(i+1) for
	// i < n.
	chain := func(n int) map[string]*mmtel.Settings {
		m := map[string]*mmtel.Settings{}
		for i := range n {
			m[chainUser(i)] = diversion(forward(chainUser(i+1), mmtel.Conditions{}))
		}
		return m
	}
	hist := func(from string, cause int, to string) []string {
		c := strconv.Itoa(cause)
		return []string{"<" + from + "?Reason=SIP%3Bcause%3D" + c + ">;index=1", "<" + to + ";cause=" + c + ">;index=1.1;mp=1"}
	}
	cases := []struct {
		name     string
		settings map[string]*mmtel.Settings
		down     bool // the settings store fails
		method   sip.RequestMethod
		to       string
		body     string
		extra    []string
		hops     []hop
		silent   []*endpoint.Endpoint
		final    int
		want181  bool
		check    func(t *testing.T, last *sip.Request, callID string)
		check180 func(t *testing.T, res *sip.Response)
	}{
		{
			name: "no services", hops: []hop{{e: bobE, code: 486}}, final: 486,
			check: func(t *testing.T, r *sip.Request, _ string) {
				requireFrom(t, r, siptest.Alice)
				requireHeaders(t, r, "P-Asserted-Identity", siptest.Alice)
				requireHeaders(t, r, "Privacy")
			},
		},
		{
			name:     "OIR restricted by default",
			settings: map[string]*mmtel.Settings{siptest.Alice: {OIR: &mmtel.OIR{Restricted: true}}},
			hops:     []hop{{e: bobE, ring: true, code: 486}}, final: 486,
			check: func(t *testing.T, r *sip.Request, callID string) {
				requireAnonymousFrom(t, r, callID)
				requireHeaders(t, r, "P-Asserted-Identity")
				if p := privacyOf(r); !slices.Contains(p, "id") || !slices.Contains(p, "user") {
					t.Errorf("Privacy %q, want id and user", p)
				}
			},
			// The caller sees its own identity in responses.
			check180: func(t *testing.T, res *sip.Response) { requireFrom(t, res, siptest.Alice) },
		},
		{
			name:     "OIR overridden by Privacy none",
			settings: map[string]*mmtel.Settings{siptest.Alice: {OIR: &mmtel.OIR{Restricted: true}}},
			extra:    []string{"Privacy: none"},
			hops:     []hop{{e: bobE, code: 486}}, final: 486,
			check: func(t *testing.T, r *sip.Request, _ string) {
				requireFrom(t, r, siptest.Alice)
				requireHeaders(t, r, "P-Asserted-Identity", siptest.Alice)
				requireHeaders(t, r, "Privacy", "none")
			},
		},
		{
			name:  "privacy id removes the asserted identity",
			extra: []string{"Privacy: id"},
			hops:  []hop{{e: bobE, code: 486}}, final: 486,
			check: func(t *testing.T, r *sip.Request, _ string) {
				requireFrom(t, r, siptest.Alice)
				requireHeaders(t, r, "P-Asserted-Identity")
				requireHeaders(t, r, "Privacy", "id")
			},
		},
		{
			name:  "privacy header anonymises and adds id",
			extra: []string{"Privacy: header", "User-Agent: caller-phone/1.0", "Organization: Caller Inc"},
			hops:  []hop{{e: bobE, code: 486}}, final: 486,
			check: func(t *testing.T, r *sip.Request, callID string) {
				requireAnonymousFrom(t, r, callID)
				requireHeaders(t, r, "P-Asserted-Identity")
				requireHeaders(t, r, "User-Agent")
				requireHeaders(t, r, "Organization")
				requireHeaders(t, r, "Privacy", "id;header")
			},
		},
		{
			name:  "privacy user anonymises From",
			extra: []string{"Privacy: user", "Subject: lunch"},
			hops:  []hop{{e: bobE, code: 486}}, final: 486,
			check: func(t *testing.T, r *sip.Request, callID string) {
				requireAnonymousFrom(t, r, callID)
				requireHeaders(t, r, "P-Asserted-Identity", siptest.Alice)
				requireHeaders(t, r, "Subject")
			},
		},
		{
			name: "critical session privacy is refused", extra: []string{"Privacy: session;critical"},
			silent: []*endpoint.Endpoint{bobE}, final: 488,
		},
		{
			name:     "callee without OIP",
			settings: map[string]*mmtel.Settings{siptest.Bob: {NoOIP: true}},
			hops:     []hop{{e: bobE, code: 486}}, final: 486,
			check: func(t *testing.T, r *sip.Request, callID string) {
				requireAnonymousFrom(t, r, callID)
				requireHeaders(t, r, "P-Asserted-Identity")
			},
		},
		{
			name:     "outgoing barring of all calls",
			settings: map[string]*mmtel.Settings{siptest.Alice: {OutgoingBarring: barAll()}},
			silent:   []*endpoint.Endpoint{bobE}, final: 603,
		},
		{
			name:     "outgoing barring of all messages",
			settings: map[string]*mmtel.Settings{siptest.Alice: {OutgoingBarring: barAll()}},
			method:   sip.MESSAGE, body: "",
			silent: []*endpoint.Endpoint{bobE}, final: 603,
		},
		{
			name: "outgoing barring of international calls bars one abroad",
			settings: map[string]*mmtel.Settings{siptest.Alice: {OutgoingBarring: &mmtel.Barring{Rules: []mmtel.BarringRule{
				{ID: "intl", Conditions: mmtel.Conditions{International: true}}}}}},
			to: "sip:+447700900123@example.com", final: 603,
		},
		{
			name: "outgoing barring of international calls lets a national one through",
			settings: map[string]*mmtel.Settings{siptest.Alice: {OutgoingBarring: &mmtel.Barring{Rules: []mmtel.BarringRule{
				{ID: "intl", Conditions: mmtel.Conditions{International: true}}}}}},
			hops: []hop{{e: bobE, code: 486}}, final: 486,
		},
		{
			name:     "incoming barring of all calls",
			settings: map[string]*mmtel.Settings{siptest.Bob: {IncomingBarring: barAll()}},
			silent:   []*endpoint.Endpoint{bobE}, final: 603,
		},
		{
			name: "incoming barring of anonymous calls",
			settings: map[string]*mmtel.Settings{siptest.Bob: {IncomingBarring: &mmtel.Barring{Rules: []mmtel.BarringRule{
				{ID: "acr", Conditions: mmtel.Conditions{Anonymous: true}}}}}},
			extra:  []string{"Privacy: id"},
			silent: []*endpoint.Endpoint{bobE}, final: 603,
		},
		{
			name:     "settings store down: the call proceeds without services",
			settings: map[string]*mmtel.Settings{siptest.Alice: {OutgoingBarring: barAll()}, siptest.Bob: {IncomingBarring: barAll()}},
			down:     true,
			hops:     []hop{{e: bobE, code: 486}}, final: 486,
		},
		{
			name:     "unconditional",
			settings: map[string]*mmtel.Settings{siptest.Bob: diversion(forward(carol, mmtel.Conditions{}))},
			hops:     []hop{{e: carolE, code: 486}}, silent: []*endpoint.Endpoint{bobE}, final: 486, want181: true,
			check: func(t *testing.T, r *sip.Request, _ string) {
				requireHeaders(t, r, "History-Info", hist(siptest.Bob, 302, carol)...)
				requireHeaders(t, r, "Diversion", "<"+siptest.Bob+">;reason=unconditional;counter=1")
			},
		},
		{
			name:     "busy",
			settings: map[string]*mmtel.Settings{siptest.Bob: diversion(forward(carol, mmtel.Conditions{Busy: true}))},
			hops:     []hop{{e: bobE, ring: true, code: 486}, {e: carolE, code: 486}}, final: 486, want181: true,
			check: func(t *testing.T, r *sip.Request, _ string) {
				requireHeaders(t, r, "History-Info", hist(siptest.Bob, 486, carol)...)
				requireHeaders(t, r, "Diversion", "<"+siptest.Bob+">;reason=user-busy;counter=1")
			},
		},
		{
			name: "no answer",
			settings: map[string]*mmtel.Settings{siptest.Bob: diversion(mmtel.DiversionRule{
				Target: carol, Conditions: mmtel.Conditions{NoAnswer: true}, NotifyCaller: true, NoReplyTimer: 300 * time.Millisecond})},
			hops: []hop{{e: bobE, ring: true, code: noAnswer}, {e: carolE, code: 486}}, final: 486, want181: true,
			check: func(t *testing.T, r *sip.Request, _ string) {
				requireHeaders(t, r, "History-Info", hist(siptest.Bob, 408, carol)...)
				requireHeaders(t, r, "Diversion", "<"+siptest.Bob+">;reason=no-answer;counter=1")
			},
		},
		{
			name:     "not registered",
			settings: map[string]*mmtel.Settings{chainUser(3): diversion(forward(carol, mmtel.Conditions{NotRegistered: true}))},
			to:       chainUser(3),
			hops:     []hop{{e: carolE, code: 486}}, final: 486, want181: true,
			check: func(t *testing.T, r *sip.Request, _ string) {
				requireHeaders(t, r, "History-Info", hist(chainUser(3), 404, carol)...)
				requireHeaders(t, r, "Diversion", "<"+chainUser(3)+">;reason=unavailable;counter=1")
			},
		},
		{
			name:     "not reachable",
			settings: map[string]*mmtel.Settings{siptest.Bob: diversion(forward(carol, mmtel.Conditions{NotReachable: true}))},
			hops:     []hop{{e: bobE, code: 503}, {e: carolE, code: 486}}, final: 486, want181: true,
			check: func(t *testing.T, r *sip.Request, _ string) {
				requireHeaders(t, r, "History-Info", hist(siptest.Bob, 503, carol)...)
				requireHeaders(t, r, "Diversion", "<"+siptest.Bob+">;reason=unavailable;counter=1")
			},
		},
		{
			name:     "video rule leaves an audio call alone",
			settings: map[string]*mmtel.Settings{siptest.Bob: diversion(forward(carol, mmtel.Conditions{Media: []string{"video"}}))},
			hops:     []hop{{e: bobE, code: 486}}, silent: []*endpoint.Endpoint{carolE}, final: 486,
			check: func(t *testing.T, r *sip.Request, _ string) { requireHeaders(t, r, "History-Info") },
		},
		{
			name:     "video rule diverts a video call",
			settings: map[string]*mmtel.Settings{siptest.Bob: diversion(forward(carol, mmtel.Conditions{Media: []string{"video"}}))},
			body:     sdpVideo,
			hops:     []hop{{e: carolE, code: 486}}, silent: []*endpoint.Endpoint{bobE}, final: 486, want181: true,
			check: func(t *testing.T, r *sip.Request, _ string) {
				requireHeaders(t, r, "Diversion", "<"+siptest.Bob+">;reason=unconditional;counter=1")
			},
		},
		{
			name:     "deflection",
			settings: map[string]*mmtel.Settings{siptest.Bob: diversion()},
			hops:     []hop{{e: bobE, code: 302, to: carol}, {e: carolE, code: 486}}, final: 486, want181: true,
			check: func(t *testing.T, r *sip.Request, _ string) {
				requireHeaders(t, r, "History-Info", hist(siptest.Bob, 480, carol)...)
				requireHeaders(t, r, "Diversion", "<"+siptest.Bob+">;reason=deflection;counter=1")
			},
		},
		{
			name: "five diversions", settings: chain(5), to: chainUser(0),
			hops: []hop{{e: c5, code: 486}}, silent: []*endpoint.Endpoint{c6}, final: 486, want181: true,
			check: func(t *testing.T, r *sip.Request, _ string) {
				hi := endpoint.HeaderValues(r, "History-Info")
				if len(hi) != 6 || !strings.Contains(hi[5], ";index=1.1.1.1.1.1;mp=1.1.1.1.1") {
					t.Errorf("History-Info %q, want 6 entries ending at index 1.1.1.1.1.1", hi)
				}
				var want []string
				for i := 4; i >= 0; i-- {
					want = append(want, "<"+chainUser(i)+">;reason=unconditional;counter=1")
				}
				requireHeaders(t, r, "Diversion", want...)
			},
		},
		{
			name: "a sixth diversion is refused", settings: chain(6), to: chainUser(0),
			silent: []*endpoint.Endpoint{c5, c6}, final: 480, want181: true,
		},
		{
			name:     "SUBSCRIBE passes through",
			settings: map[string]*mmtel.Settings{siptest.Bob: {IncomingBarring: barAll(), Diversion: &mmtel.Diversion{Rules: []mmtel.DiversionRule{forward(carol, mmtel.Conditions{})}}}},
			method:   sip.SUBSCRIBE, body: "", extra: []string{"Event: message-summary", "Expires: 0"},
			hops: []hop{{e: bobE, code: 489}}, silent: []*endpoint.Endpoint{carolE}, final: 489,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s.store.set(tc.down, tc.settings)
			method, to, body := tc.method, tc.to, tc.body
			if method == "" {
				method = sip.INVITE
			}
			if to == "" {
				to = siptest.Bob
			}
			if method == sip.INVITE && body == "" {
				body = endpoint.SDP
			}
			uac := caller.On(t)
			callID, text := s.Send(uac, method, `"Caller" <`+siptest.Alice+">", to, body, tc.extra...)
			var last *sip.Request
			for i, h := range tc.hops {
				e := h.e.On(t)
				r := e.Expect(method, callID)
				last = r.Req()
				if h.ring {
					e.Answer(r, 180, "Ringing")
					res := response(uac, callID, 180)
					if tc.check180 != nil {
						tc.check180(t, res)
					}
				}
				switch h.code {
				case noAnswer:
					// The no-reply timer cancels the callee.
					c := e.Expect(sip.CANCEL, callID)
					e.Answer(c, 200, "OK")
					e.Answer(r, 487, "Request Terminated")
				case 302:
					res := sip.NewResponseFromRequest(last, 302, "Moved Temporarily", nil)
					res.To().Params.Add("tag", "d"+strconv.Itoa(i))
					res.AppendHeader(sip.NewHeader("Contact", "<"+h.to+">"))
					e.Send(r.From, res)
				default:
					e.Answer(r, h.code, "Failed")
				}
			}
			res := uac.Final(callID, method)
			if res.StatusCode != tc.final {
				t.Fatalf("final %d %s, want %d", res.StatusCode, res.Reason, tc.final)
			}
			if method == sip.INVITE {
				s.AckFailure(uac, text, res)
			}
			if res.StatusCode == 603 || res.StatusCode == 480 || res.StatusCode == 488 {
				if w := res.GetHeader("Warning"); w == nil || !strings.Contains(w.Value(), "mmtel") {
					t.Errorf("%d without the AS's Warning: %v", res.StatusCode, w)
				}
			}
			got181 := false
			for _, m := range uac.Drain() {
				if r := m.Res(); r != nil && r.CallID().Value() == callID && r.StatusCode == 181 {
					got181 = true
				}
			}
			if got181 != tc.want181 {
				t.Errorf("181 Call Is Being Forwarded received: %v, want %v", got181, tc.want181)
			}
			if tc.check != nil {
				if last == nil {
					t.Fatal("no callee was reached")
				}
				tc.check(t, last, callID)
			}
			for _, e := range tc.silent {
				never(e.On(t), callID)
			}
		})
	}
}
