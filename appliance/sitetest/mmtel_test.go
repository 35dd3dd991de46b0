package sitetest

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"stillwater/appliance/homer"
	"stillwater/bench/sipp"
)

// deflectTo answers 302 naming target.
func deflectTo(target string) func(*sip.Request, sip.ServerTransaction) {
	return func(req *sip.Request, tx sip.ServerTransaction) {
		res := sip.NewResponseFromRequest(req, 302, "Moved Temporarily", nil)
		res.To().Params.Add("tag", "deflect")
		res.AppendHeader(sip.NewHeader("Contact", "<"+target+">"))
		tx.Respond(res)
	}
}

// simservs builds a document from service elements.
func simservs(services ...string) string {
	return `<?xml version="1.0" encoding="UTF-8"?>
<simservs xmlns="http://uri.etsi.org/ngn/params/xml/simservs/xcap" xmlns:cp="urn:ietf:params:xml:ns:common-policy">
` + strings.Join(services, "\n") + "\n</simservs>\n"
}

func barringDoc(service, conditions string) string {
	return simservs(`<` + service + ` active="true"><cp:ruleset><cp:rule id="bar"><cp:conditions>` + conditions +
		`</cp:conditions><cp:actions><allow>false</allow></cp:actions></cp:rule></cp:ruleset></` + service + `>`)
}

func diversionDoc(conditions, target, actions string) string {
	return simservs(`<communication-diversion active="true"><cp:ruleset><cp:rule id="cf"><cp:conditions>` + conditions +
		`</cp:conditions><cp:actions><forward-to><target>` + target + `</target></forward-to>` + actions +
		`</cp:actions></cp:rule></cp:ruleset></communication-diversion>`)
}

// allCasesIFC invokes the MMTEL AS for INVITEs in every originating and
// terminating case, registered or not, as Ellis provisions lines.
const allCasesIFC = `<?xml version="1.0" encoding="UTF-8"?>
<ServiceProfile>
  <InitialFilterCriteria><Priority>0</Priority><TriggerPoint><ConditionTypeCNF>1</ConditionTypeCNF>
    <SPT><ConditionNegated>0</ConditionNegated><Group>0</Group><Method>INVITE</Method></SPT>
    <SPT><ConditionNegated>0</ConditionNegated><Group>1</Group><SessionCase>0</SessionCase></SPT>
    <SPT><ConditionNegated>0</ConditionNegated><Group>1</Group><SessionCase>3</SessionCase></SPT>
  </TriggerPoint><ApplicationServer><ServerName>sip:mmtel.example.com</ServerName><DefaultHandling>0</DefaultHandling></ApplicationServer></InitialFilterCriteria>
  <InitialFilterCriteria><Priority>1</Priority><TriggerPoint><ConditionTypeCNF>1</ConditionTypeCNF>
    <SPT><ConditionNegated>0</ConditionNegated><Group>0</Group><Method>INVITE</Method></SPT>
    <SPT><ConditionNegated>0</ConditionNegated><Group>1</Group><SessionCase>1</SessionCase></SPT>
    <SPT><ConditionNegated>0</ConditionNegated><Group>1</Group><SessionCase>2</SessionCase></SPT>
  </TriggerPoint><ApplicationServer><ServerName>sip:mmtel.example.com</ServerName><DefaultHandling>0</DefaultHandling></ApplicationServer></InitialFilterCriteria>
</ServiceProfile>
`

// TestMMTEL drives the built-in MMTEL AS end to end on an all-in-one
// node: settings are written over Homer's XCAP interface, calls are made
// between UEs registered through the P-CSCF, and what the caller, the
// callee and the diverted-to UE see is checked.
func TestMMTEL(t *testing.T) {
	skipIfShort(t)
	s := newSite(t, siteOpts{nodes: 1, shared: imsShared})
	n := s.node(1)
	users := sipUsers(t, n, 6505556000, 4)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	c := newIMSClient()
	aor := func(u sipp.User) string { return "sip:" + u.Name + "@" + u.Domain }
	// The unregistered callee's iFCs invoke the AS when it is called
	// unregistered too.
	r, err := imsDo(c, http.MethodGet, imsURL(n, portHSProv, "/public/"+url.PathEscape(aor(users[3]))+"/service_profile"), nil)
	if err != nil || r.code != http.StatusSeeOther {
		t.Fatalf("service profile of %s: %v %v", aor(users[3]), r, err)
	}
	if r, err := imsDo(c, http.MethodPut, imsURL(n, portHSProv, r.header.Get("Location")+"/filter_criteria"), []byte(allCasesIFC)); err != nil || r.code != http.StatusOK {
		t.Fatalf("iFCs of %s: %v %v", aor(users[3]), r, err)
	}
	alice, bob, carol := registeredUE(t, ctx, n, users[0]), registeredUE(t, ctx, n, users[1]), registeredUE(t, ctx, n, users[2])
	// The callee answers as each case says; the others are busy.
	alice.answers(busyHere)
	carol.answers(busyHere)
	dave := aor(users[3]) // never registers
	everyone := []string{alice.aor(), bob.aor(), carol.aor(), dave}

	history := func(from string, cause int, to string) []string {
		c := strconv.Itoa(cause)
		return []string{"<" + from + "?Reason=SIP%3Bcause%3D" + c + ">;index=1", "<" + to + ";cause=" + c + ">;index=1.1;mp=1"}
	}
	cases := []struct {
		name     string
		docs     map[string]string // simservs documents by IMPU; the others get the default
		to       string
		sdp      string
		hdrs     []sip.Header
		bob      func(*sip.Request, sip.ServerTransaction) // how bob answers
		bobRings bool                                      // bob must be sent the INVITE
		final    int
		diverted []string // History-Info wanted at carol; nil: carol must not be called
		reason   string   // Diversion reason wanted at carol
		check    func(t *testing.T, atBob *sip.Request)
	}{
		{name: "outgoing barring", docs: map[string]string{alice.aor(): barringDoc("outgoing-communication-barring", "")}, final: 603},
		{name: "outgoing barring of international calls", to: "sip:+447700900123@example.com",
			docs: map[string]string{alice.aor(): barringDoc("outgoing-communication-barring", "<international/>")}, final: 603},
		{name: "international barring lets national calls through", bobRings: true, final: 486,
			docs: map[string]string{alice.aor(): barringDoc("outgoing-communication-barring", "<international/>")}},
		{name: "incoming barring", docs: map[string]string{bob.aor(): barringDoc("incoming-communication-barring", "")}, final: 603},
		{name: "identity restricted", bobRings: true, final: 486,
			docs: map[string]string{alice.aor(): simservs(`<originating-identity-presentation-restriction active="true"><default-behaviour>presentation-restricted</default-behaviour></originating-identity-presentation-restriction>`)},
			check: func(t *testing.T, r *sip.Request) {
				if f := r.From(); f.Address.String() != "sip:anonymous@anonymous.invalid" || f.DisplayName != "Anonymous" {
					t.Errorf("callee sees From %q, want the anonymous URI", f.Value())
				}
				if pai := r.GetHeader("P-Asserted-Identity"); pai != nil {
					t.Errorf("callee sees P-Asserted-Identity %q", pai.Value())
				}
				if p := r.GetHeader("Privacy"); p == nil || !strings.Contains(p.Value(), "id") {
					t.Errorf("callee sees Privacy %v, want id", p)
				}
			}},
		{name: "identity shown", bobRings: true, final: 486,
			check: func(t *testing.T, r *sip.Request) {
				if f := r.From(); f.Address.String() != alice.aor() {
					t.Errorf("callee sees From %q, want %s", f.Value(), alice.aor())
				}
				if pai := r.GetHeader("P-Asserted-Identity"); pai == nil || !strings.Contains(pai.Value(), alice.aor()) {
					t.Errorf("callee sees P-Asserted-Identity %v, want %s", pai, alice.aor())
				}
			}},
		{name: "unconditional", docs: map[string]string{bob.aor(): diversionDoc("", carol.aor(), "")}, final: 486,
			diverted: history(bob.aor(), 302, carol.aor()), reason: "unconditional"},
		{name: "busy", docs: map[string]string{bob.aor(): diversionDoc("<busy/>", carol.aor(), "")}, bobRings: true, final: 486,
			diverted: history(bob.aor(), 486, carol.aor()), reason: "user-busy"},
		{name: "no answer", docs: map[string]string{bob.aor(): diversionDoc("<no-answer/>", carol.aor(), "<NoReplyTimer>5</NoReplyTimer>")},
			bob: bob.ringForever, bobRings: true, final: 486, diverted: history(bob.aor(), 408, carol.aor()), reason: "no-answer"},
		{name: "not registered", to: dave, docs: map[string]string{dave: diversionDoc("<not-registered/>", carol.aor(), "")}, final: 486,
			diverted: history(dave, 404, carol.aor()), reason: "unavailable"},
		{name: "video call with a video rule", sdp: ueVideoSDP, docs: map[string]string{bob.aor(): diversionDoc("<media>video</media>", carol.aor(), "")}, final: 486,
			diverted: history(bob.aor(), 302, carol.aor()), reason: "unconditional"},
		{name: "audio call with a video rule", docs: map[string]string{bob.aor(): diversionDoc("<media>video</media>", carol.aor(), "")}, bobRings: true, final: 486},
		{name: "deflection", docs: map[string]string{bob.aor(): homerDefault()}, bob: deflectTo(carol.aor()), bobRings: true, final: 486,
			diverted: history(bob.aor(), 480, carol.aor()), reason: "deflection"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, impu := range everyone {
				doc, ok := tc.docs[impu]
				if !ok {
					doc = homerDefault()
				}
				r, err := imsDo(c, http.MethodPut, imsURL(n, portHomer, imsSimservsPath(impu)), []byte(doc), "Content-Type", homer.ContentType)
				if err != nil || r.code >= 300 {
					t.Fatalf("Homer PUT %s: %v %v", impu, r, err)
				}
			}
			answer := tc.bob
			if answer == nil {
				answer = busyHere
			}
			bob.answers(answer)
			to, sdp := tc.to, tc.sdp
			if to == "" {
				to = bob.aor()
			}
			if sdp == "" {
				sdp = ueSDP
			}
			cctx, ccancel := context.WithTimeout(ctx, 40*time.Second)
			defer ccancel()
			res, err := alice.invite(cctx, to, sdp, tc.hdrs...)
			if err != nil {
				t.Fatal(err)
			}
			final := res[len(res)-1]
			callID := final.CallID().Value()
			if final.StatusCode != tc.final {
				t.Fatalf("final %d %s, want %d", final.StatusCode, final.Reason, tc.final)
			}
			got181 := false
			for _, r := range res {
				got181 = got181 || r.StatusCode == 181
			}
			if got181 != (tc.diverted != nil) {
				t.Errorf("caller got 181 Call Is Being Forwarded: %v, want %v", got181, tc.diverted != nil)
			}
			if tc.bobRings {
				r, err := inCall(cctx, &bob.invites, callID)
				if err != nil {
					t.Fatal(err)
				}
				if tc.check != nil {
					tc.check(t, r)
				}
			} else {
				noReq(t, bob, callID)
			}
			if tc.bob != nil && tc.reason == "no-answer" {
				if _, err := inCall(cctx, &bob.cancels, callID); err != nil {
					t.Errorf("bob was not cancelled on no answer: %v", err)
				}
			}
			if tc.diverted == nil {
				noReq(t, carol, callID)
				return
			}
			r, err := inCall(cctx, &carol.invites, callID)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(r.Recipient.String(), "sip:"+carol.user.Name+"@") {
				t.Errorf("diverted INVITE for %s, want %s", r.Recipient.String(), carol.aor())
			}
			hi := mmtelHeaders(r, "History-Info")
			if len(hi) != len(tc.diverted) {
				t.Fatalf("History-Info %q, want %q", hi, tc.diverted)
			}
			for i := range hi {
				if !strings.Contains(hi[i], tc.diverted[i]) {
					t.Errorf("History-Info[%d] %q, want %q", i, hi[i], tc.diverted[i])
				}
			}
			from := strings.TrimSuffix(strings.TrimPrefix(strings.SplitN(tc.diverted[0], "?", 2)[0], "<"), ">")
			if dv := mmtelHeaders(r, "Diversion"); len(dv) != 1 || dv[0] != "<"+from+">;reason="+tc.reason+";counter=1" {
				t.Errorf("Diversion %q, want <%s>;reason=%s;counter=1", dv, from, tc.reason)
			}
		})
	}
}

func homerDefault() string { return string(homer.DefaultDocument()) }

func mmtelHeaders(m interface{ GetHeaders(string) []sip.Header }, name string) []string {
	var out []string
	for _, h := range m.GetHeaders(name) {
		out = append(out, h.Value())
	}
	return out
}
