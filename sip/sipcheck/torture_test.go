package sipcheck

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/emiago/sipgo/sip"
)

// Where a torture case is rejected.
const (
	atParse  = iota // Parse returns an *Error
	atCheck         // Parse succeeds, CheckRequest / CheckResponse rejects
	accepted        // both pass
)

type tortureCase struct {
	file  string
	stage int
	code  int  // status for a rejected request; 0 for a dropped response
	reply bool // a rejected request can be answered (headers were read)
	check func(t *testing.T, m sip.Message)
}

// RFC 4475 §3.1.1 (valid), §3.1.2 (invalid) and the §3.3/§3.4 cases a proxy
// or registrar checks on receipt, in our own renditions under testdata/.
var tortureCases = []tortureCase{
	// §3.1.1 valid messages.
	{file: "valid/wsinv.sip", stage: accepted, check: checkWsinv},
	{file: "valid/intmeth.sip", stage: accepted, check: wantMethod("!interesting-Method0123456789_*+`.%indeed'~")},
	{file: "valid/esc01.sip", stage: accepted, check: wantCallID("esc01.7ahd92kjd8-11")},
	{file: "valid/escnull.sip", stage: accepted, check: wantCallID("escnull.1k2j3h4g5f6d7s8a")},
	// RE%47IST%45R is an unknown method, not REGISTER: proxied, or 501.
	{file: "valid/esc02.sip", stage: accepted, check: wantMethod("RE%47IST%45R")},
	{file: "valid/lwsdisp.sip", stage: accepted, check: wantCallID("lwsdisp.9f8e7d@funky.example.com")},
	{file: "valid/longreq.sip", stage: accepted, check: checkLongreq},
	// The second request in the datagram is ignored.
	{file: "valid/dblreq.sip", stage: accepted, check: wantCallID("dblreq.7h6g5f4d3s2a1")},
	{file: "valid/semiuri.sip", stage: accepted, check: checkSemiuri},
	{file: "valid/transports.sip", stage: accepted, check: checkTransports},
	{file: "valid/mpart01.sip", stage: accepted, check: wantBodyLen(461)},
	{file: "valid/unreason.sip", stage: accepted, check: wantStatus(200)},
	{file: "valid/noreason.sip", stage: accepted, check: wantStatus(100)},

	// §3.1.2 invalid messages.
	{file: "invalid/badinv01.sip", stage: atParse, code: 400, reply: true},
	{file: "invalid/clerr.sip", stage: atParse, code: 400, reply: true},
	{file: "invalid/ncl.sip", stage: atParse, code: 400, reply: true},
	{file: "invalid/scalar02.sip", stage: atParse, code: 400},
	{file: "invalid/scalarlg.sip", stage: atParse},
	{file: "invalid/quotbal.sip", stage: atParse, code: 400},
	{file: "invalid/ltgtruri.sip", stage: atParse, code: 400, reply: true},
	{file: "invalid/lwsruri.sip", stage: atParse, code: 400},
	{file: "invalid/lwsstart.sip", stage: atParse, code: 400},
	{file: "invalid/trws.sip", stage: atParse, code: 400},
	{file: "invalid/escruri.sip", stage: atCheck, code: 400, reply: true},
	{file: "invalid/baddate.sip", stage: atCheck, code: 400, reply: true},
	{file: "invalid/regbadct.sip", stage: atParse, code: 400, reply: true},
	{file: "invalid/badaspec.sip", stage: atParse, code: 400},
	{file: "invalid/baddn.sip", stage: atParse, code: 400, reply: true},
	{file: "invalid/badvers.sip", stage: atCheck, code: 505, reply: true},
	{file: "invalid/mismatch01.sip", stage: atCheck, code: 400, reply: true},
	// 501 or 400 are both acceptable; we check CSeq first.
	{file: "invalid/mismatch02.sip", stage: atCheck, code: 400, reply: true},
	{file: "invalid/bigcode.sip", stage: atParse},

	// §3.3 and §3.4 cases decided on receipt.
	{file: "semantic/insuf.sip", stage: atCheck, code: 400},
	{file: "semantic/unkscm.sip", stage: atCheck, code: 416, reply: true},
	{file: "semantic/novelsc.sip", stage: atParse, code: 416, reply: true},
	{file: "semantic/bext01.sip", stage: atCheck, code: 420, reply: true, check: nil},
	{file: "semantic/multi01.sip", stage: atCheck, code: 400, reply: true},
	{file: "semantic/mcl01.sip", stage: atCheck, code: 400, reply: true},
	// RFC 2543 request without Max-Forwards: a proxy passes it (§16.3).
	{file: "semantic/inv2543.sip", stage: accepted, check: wantCallID("inv2543.1717@ift.client.example.com")},
	// Max-Forwards 0 is the forwarding step's 483, not a syntax error.
	{file: "semantic/zeromf.sip", stage: accepted, check: wantCallID("zeromf.jfasdlfnm2o2l43r5u0asdfas")},
	{file: "semantic/regescrt.sip", stage: accepted, check: wantCallID("regescrt.k345asrl3fdbv@192.0.2.1")},
}

func TestTorture(t *testing.T) {
	for _, f := range tortureFiles(t) {
		name, _ := filepath.Rel("testdata", f)
		if !slices.ContainsFunc(tortureCases, func(c tortureCase) bool { return c.file == name }) {
			t.Errorf("%s has no test case", f)
		}
	}
	for _, tc := range tortureCases {
		t.Run(tc.file, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join("testdata", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			msg, perr := Parse(data)
			var e *Error
			if perr != nil {
				if !errors.As(perr, &e) {
					t.Fatalf("Parse error %v is not an *Error", perr)
				}
				if tc.stage != atParse {
					t.Fatalf("Parse: %v", perr)
				}
			} else if tc.stage == atParse {
				t.Fatalf("Parse accepted it: %v", msg)
			}
			if tc.stage != atParse {
				e = check(msg)
			}
			switch {
			case tc.stage == accepted:
				if e != nil {
					t.Fatalf("rejected: %v", e)
				}
				if tc.check != nil {
					tc.check(t, msg)
				}
				return
			case e == nil:
				t.Fatal("accepted, want rejection")
			}
			if tc.code != 0 && e.Code != tc.code {
				t.Errorf("status %d (%s), want %d", e.Code, e.Reason, tc.code)
			}
			req, _ := msg.(*sip.Request)
			_, rerr := e.Response(req, "")
			if tc.reply && rerr != nil {
				t.Errorf("cannot answer: %v", rerr)
			}
			if !tc.reply && rerr == nil {
				t.Errorf("answerable, want a message with too little to answer")
			}
			t.Logf("%d %s", e.Code, e.Reason)
		})
	}
}

// check runs the check for msg's kind.
func check(msg sip.Message) *Error {
	switch m := msg.(type) {
	case *sip.Request:
		return CheckRequest(m)
	case *sip.Response:
		if err := CheckResponse(m); err != nil {
			return &Error{Reason: err.Error()}
		}
		return nil
	}
	return &Error{Reason: "no message"}
}

func wantCallID(id string) func(*testing.T, sip.Message) {
	return func(t *testing.T, m sip.Message) {
		t.Helper()
		if got := m.CallID().Value(); got != id {
			t.Errorf("Call-ID = %q, want %q", got, id)
		}
	}
}

func wantMethod(method string) func(*testing.T, sip.Message) {
	return func(t *testing.T, m sip.Message) {
		t.Helper()
		if got := string(m.(*sip.Request).Method); got != method {
			t.Errorf("method = %q, want %q", got, method)
		}
	}
}

func wantStatus(code int) func(*testing.T, sip.Message) {
	return func(t *testing.T, m sip.Message) {
		t.Helper()
		if got := m.(*sip.Response).StatusCode; got != code {
			t.Errorf("status = %d, want %d", got, code)
		}
	}
}

func wantBodyLen(n int) func(*testing.T, sip.Message) {
	return func(t *testing.T, m sip.Message) {
		t.Helper()
		if got := len(m.Body()); got != n {
			t.Errorf("body length = %d, want %d", got, n)
		}
	}
}

func checkWsinv(t *testing.T, m sip.Message) {
	req := m.(*sip.Request)
	if tag, _ := req.To().Params.Get("tag"); tag != "7746281n" {
		t.Errorf("To tag = %q", tag)
	}
	if tag, _ := req.From().Params.Get("tag"); tag != "55hqkd1" {
		t.Errorf("From tag = %q", tag)
	}
	if h := req.To().Address.Host; h != "chair-dnrc.example.com" {
		t.Errorf("To host = %q", h)
	}
	if got := req.CSeq(); got.SeqNo != 9 || got.MethodName != sip.INVITE {
		t.Errorf("CSeq = %v", got)
	}
	vias := req.GetHeaders("Via")
	if len(vias) != 3 {
		t.Fatalf("%d Vias, want 3", len(vias))
	}
	want := []struct{ transport, host, branch string }{
		{"UDP", "192.0.2.2", "390skdjuw"},
		{"TCP", "spindle.example.com", "z9hG4bK9ikj8"},
		{"UDP", "192.168.255.111", "z9hG4bK30239"},
	}
	for i, w := range want {
		v := vias[i].(*sip.ViaHeader)
		b, _ := v.Params.Get("branch")
		if v.Transport != w.transport || v.Host != w.host || b != w.branch {
			t.Errorf("Via %d = %s/%s branch %q, want %+v", i, v.Transport, v.Host, b, w)
		}
	}
	if q, _ := req.Contact().Params.Get("q"); q != "0.33" {
		t.Errorf("Contact q = %q", q)
	}
	if mf := req.MaxForwards(); mf == nil || *mf != 68 {
		t.Errorf("Max-Forwards = %v", mf)
	}
}

func checkLongreq(t *testing.T, m sip.Message) {
	if n := len(m.GetHeaders("Via")); n != 34 {
		t.Errorf("%d Vias, want 34", n)
	}
	if len(m.CallID().Value()) < 120 {
		t.Errorf("Call-ID truncated: %q", m.CallID().Value())
	}
}

func checkSemiuri(t *testing.T, m sip.Message) {
	u := m.(*sip.Request).Recipient
	if u.User != "user;par=u%40example.net" || u.Host != "example.com" {
		t.Errorf("Request-URI user %q host %q", u.User, u.Host)
	}
}

func checkTransports(t *testing.T, m sip.Message) {
	var got []string
	for _, h := range m.GetHeaders("Via") {
		got = append(got, h.(*sip.ViaHeader).Transport)
	}
	if want := []string{"UDP", "SCTP", "TLS", "UNKNOWN", "TCP"}; !slices.Equal(got, want) {
		t.Errorf("transports %v, want %v", got, want)
	}
}

// tortureFiles lists the torture messages under testdata.
func tortureFiles(tb testing.TB) []string {
	tb.Helper()
	var files []string
	for _, dir := range []string{"valid", "invalid", "semantic"} {
		m, err := filepath.Glob(filepath.Join("testdata", dir, "*.sip"))
		if err != nil {
			tb.Fatal(err)
		}
		files = append(files, m...)
	}
	return files
}
