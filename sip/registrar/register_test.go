package registrar

import (
	"fmt"
	"maps"
	"strings"
	"sync"
	"testing"

	"stillwater/diameter/hss"
)

const (
	inst1   = "<urn:uuid:00000000-0000-0000-0000-000000000001>"
	c1      = `Contact: <sip:6505550001@192.0.2.1:5060;transport=tcp>;+sip.instance="` + inst1 + `"`
	c2      = "Contact: <sip:6505550001@192.0.2.2:5060>"
	id2     = "sip:6505550001@192.0.2.2:5060"
	cSOS    = "Contact: <sip:6505550001@192.0.2.3:5060;sos>"
	idSOS   = "sip:6505550001@192.0.2.3:5060;sos"
	expires = "Expires: "
)

// TestRegisterSequence drives one subscriber through RFC 3261 §10.3's
// cases, step by step, checking the status and the bindings after each.
func TestRegisterSequence(t *testing.T) {
	e := newEnv(t)
	steps := []struct {
		name     string
		aor      string
		impi     string
		callID   string
		cseq     int
		extra    []string
		code     int
		want     map[string]int64 // binding id → seconds left; nil: unchanged
		contacts int              // Contact headers in a 200
		state    hss.RegState
	}{
		{name: "initial, default expiry", callID: "c1", cseq: 1, extra: []string{c1},
			code: 200, want: map[string]int64{inst1: 300}, contacts: 1, state: hss.Registered},
		{name: "refresh clamped to max", callID: "c1", cseq: 2, extra: []string{c1, expires + "600"},
			code: 200, want: map[string]int64{inst1: 300}, contacts: 1, state: hss.Registered},
		{name: "shorten by contact param", callID: "c1", cseq: 3, extra: []string{c1 + ";expires=100", expires + "250"},
			code: 200, want: map[string]int64{inst1: 100}, contacts: 1, state: hss.Registered},
		{name: "second contact, other Call-ID", callID: "c2", cseq: 1, extra: []string{c2, expires + "200"},
			code: 200, want: map[string]int64{inst1: 100, id2: 200}, contacts: 2, state: hss.Registered},
		{name: "stale CSeq on the same Call-ID", callID: "c1", cseq: 3, extra: []string{c1},
			code: 400, state: hss.Registered},
		{name: "fetch", callID: "c1", cseq: 4,
			code: 200, contacts: 2, state: hss.Registered},
		{name: "fetch through another identity of the set", aor: alice2, callID: "c9", cseq: 1,
			code: 200, contacts: 2, state: hss.Registered},
		{name: "remove one", callID: "c2", cseq: 2, extra: []string{c2, expires + "0"},
			code: 200, want: map[string]int64{inst1: 100}, contacts: 1, state: hss.Registered},
		{name: "emergency registration", callID: "c3", cseq: 1, extra: []string{cSOS},
			code: 200, want: map[string]int64{inst1: 100, idSOS: 300}, contacts: 2, state: hss.Registered},
		{name: "emergency cannot be removed", callID: "c3", cseq: 2, extra: []string{cSOS + ";expires=0"},
			code: 501, state: hss.Registered},
		{name: "star with non-zero Expires", callID: "c1", cseq: 5, extra: []string{"Contact: *", expires + "300"},
			code: 400, state: hss.Registered},
		{name: "star with another contact", callID: "c1", cseq: 5, extra: []string{"Contact: *", c2, expires + "0"},
			code: 400, state: hss.Registered},
		{name: "star without Expires", callID: "c1", cseq: 5, extra: []string{"Contact: *"},
			code: 400, state: hss.Registered},
		{name: "malformed expires param", callID: "c1", cseq: 5, extra: []string{c1 + ";expires=soon"},
			code: 400, state: hss.Registered},
		{name: "malformed Expires header", callID: "c1", cseq: 5, extra: []string{c1, expires + "-1"},
			code: 400, state: hss.Registered},
		{name: "malformed q", callID: "c1", cseq: 5, extra: []string{c2 + ";q=2"},
			code: 400, state: hss.Registered},
		{name: "star keeps the emergency binding", callID: "c1", cseq: 5, extra: []string{"Contact: *", expires + "0"},
			code: 200, want: map[string]int64{idSOS: 300}, contacts: 1, state: hss.Registered},
		{name: "barred identity", aor: alice3, callID: "c4", cseq: 1, extra: []string{c2},
			code: 403, state: hss.Registered},
		{name: "unknown identity", aor: "sip:nobody@example.com", callID: "c4", cseq: 1, extra: []string{c2},
			code: 403, state: hss.Registered},
		{name: "private identity of another subscriber", impi: bobI, callID: "c4", cseq: 1, extra: []string{c2},
			code: 403, state: hss.Registered},
	}
	for _, s := range steps {
		aor := s.aor
		if aor == "" {
			aor = alice
		}
		impi := s.impi
		if impi == "" {
			impi = aliceI
		}
		before := e.bindings(alice)
		res := e.reg.Register(e.ctx, registerReq(t, aor, s.callID, s.cseq, s.extra...), impi)
		if res.StatusCode != s.code {
			t.Fatalf("%s: status %d %s, want %d", s.name, res.StatusCode, res.Reason, s.code)
		}
		want := s.want
		if want == nil {
			want = before
		}
		if got := e.bindings(alice); !maps.Equal(got, want) {
			t.Errorf("%s: bindings %v, want %v", s.name, got, want)
		}
		if s.code == 200 {
			if n := len(res.GetHeaders("Contact")); n != s.contacts {
				t.Errorf("%s: %d Contact headers in the 200, want %d", s.name, n, s.contacts)
			}
		}
		if tag, _ := res.To().Params.Get("tag"); tag == "" {
			t.Errorf("%s: response has no To tag", s.name)
		}
		if got := e.regState(alice); got != s.state {
			t.Errorf("%s: HSS state %v, want %v", s.name, got, s.state)
		}
	}
}

// TestRegisterLastRemovalDeregisters: the set's registration at the HSS
// follows its bindings.
func TestRegisterLastRemovalDeregisters(t *testing.T) {
	e := newEnv(t)
	if got := e.regState(bob); got != hss.NotRegistered {
		t.Fatalf("state before %v", got)
	}
	res := e.reg.Register(e.ctx, registerReq(t, bob, "b1", 1, "Contact: <sip:bob@192.0.2.7>"), bobI)
	if res.StatusCode != 200 || e.regState(bob) != hss.Registered {
		t.Fatalf("register: %d, state %v", res.StatusCode, e.regState(bob))
	}
	rd, err := e.hss.RegData(e.ctx, bob)
	if err != nil || rd.SCSCF != scscf {
		t.Fatalf("HSS S-CSCF %q, %v", rd.SCSCF, err)
	}
	res = e.reg.Register(e.ctx, registerReq(t, bob, "b1", 2, "Contact: <sip:bob@192.0.2.7>", "Expires: 0"), bobI)
	if res.StatusCode != 200 || len(res.GetHeaders("Contact")) != 0 {
		t.Fatalf("deregister: %d\n%s", res.StatusCode, res)
	}
	if got := e.regState(bob); got != hss.NotRegistered {
		t.Errorf("state after %v", got)
	}
	if got := e.bindings(bob); len(got) != 0 {
		t.Errorf("bindings left: %v", got)
	}
	if len(res.GetHeaders("Service-Route")) != 0 || len(res.GetHeaders("P-Associated-URI")) != 0 {
		t.Errorf("a de-registration's 200 carries Service-Route or P-Associated-URI:\n%s", res)
	}
}

// TestRegisterResponse pins the 200 OK on the wire: contacts with expires
// and pub-gruu, Path echoed, Service-Route, one P-Associated-URI per
// unbarred identity of the set (default first), Require: outbound.
func TestRegisterResponse(t *testing.T) {
	e := newEnv(t)
	req := registerReq(t, alice2, "resp1", 1,
		`Contact: <sip:6505550001@192.0.2.1:5060;transport=tcp;ob>;+sip.instance="<urn:uuid:00000000-0000-0000-0000-0000000000aa>";reg-id=1;+g.3gpp.smsip;q=0.5`,
		`Contact: "Desk" <sip:6505550001@192.0.2.2:5060>;expires=60`,
		"Path: <sip:term@pcscf.example.com:5058;transport=tcp;lr;ob>",
		"Supported: path, gruu, outbound",
		"Expires: 3600")
	res := e.reg.Register(e.ctx, req, aliceI)
	if res.StatusCode != 200 {
		t.Fatalf("status %d %s", res.StatusCode, res.Reason)
	}
	golden(t, "register_200.golden", e.wire(res))

	// The outbound binding is keyed by instance and reg-id.
	bs, err := e.reg.Lookup(e.ctx, alice)
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]bool{}
	for _, b := range bs {
		ids[b.ID] = true
		if b.Instance != "" {
			if b.RegID != 1 || b.Q != 0.5 || len(b.Path) != 1 || b.PrivateID != aliceI {
				t.Errorf("outbound binding %+v", b)
			}
			if _, ok := b.Param("+g.3gpp.smsip"); !ok {
				t.Errorf("feature tag lost: %+v", b.Params)
			}
		}
	}
	if !ids["<urn:uuid:00000000-0000-0000-0000-0000000000aa>;reg-id=1"] || !ids["sip:6505550001@192.0.2.2:5060"] {
		t.Errorf("binding ids %v", ids)
	}
}

// TestOutboundNeedsFirstHop: without ob on the first Path URI, reg-id is
// ignored and the instance alone keys the binding.
func TestOutboundNeedsFirstHop(t *testing.T) {
	e := newEnv(t)
	res := e.reg.Register(e.ctx, registerReq(t, alice, "ob1", 1,
		`Contact: <sip:u@192.0.2.1>;+sip.instance="<urn:uuid:1>";reg-id=1`,
		"Path: <sip:pcscf.example.com;lr>", "Supported: outbound"), aliceI)
	if res.StatusCode != 200 || len(res.GetHeaders("Require")) != 0 {
		t.Fatalf("%d\n%s", res.StatusCode, res)
	}
	if got := e.bindings(alice); !maps.Equal(got, map[string]int64{"<urn:uuid:1>": 300}) {
		t.Errorf("bindings %v", got)
	}
}

// TestConcurrentRegisters: REGISTERs racing on one set never lose a binding.
func TestConcurrentRegisters(t *testing.T) {
	e := newEnv(t)
	const n = 20
	var wg sync.WaitGroup
	codes := make([]int, n)
	for i := range n {
		wg.Go(func() {
			c := fmt.Sprintf(`Contact: <sip:6505550001@192.0.2.%d:5060>;+sip.instance="<urn:uuid:%d>"`, i+1, i)
			res := e.reg.Register(e.ctx, registerReq(t, alice, fmt.Sprintf("cc%d", i), 1, c), aliceI)
			codes[i] = res.StatusCode
		})
	}
	wg.Wait()
	for i, c := range codes {
		if c != 200 {
			t.Errorf("REGISTER %d: %d", i, c)
		}
	}
	got := e.bindings(alice)
	if len(got) != n {
		t.Fatalf("%d bindings, want %d: %v", len(got), n, sortedKeys(got))
	}
	for i := range n {
		if _, ok := got[fmt.Sprintf("<urn:uuid:%d>", i)]; !ok {
			t.Errorf("binding %d lost", i)
		}
	}
}

func TestGRUU(t *testing.T) {
	cases := []struct {
		aor, instance, want string
	}{
		{alice, `<urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6>`, alice + ";gr=urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6"},
		{alice, `<urn:gsma:imei:90420156-025763-0>`, alice + ";gr=urn:gsma:imei:90420156-025763-0"},
		{alice, `<urn:x-test:a;b=c?d@e f%"\>`, alice + ";gr=urn:x-test:a%3Bb%3Dc%3Fd%40e%20f%25%22%5C"},
		{"tel:+16505550001", `<urn:uuid:1>`, ""},
		{alice, "", ""},
	}
	for _, c := range cases {
		b := Binding{AoR: c.aor, Instance: c.instance}
		if got := b.GRUU(); got != c.want {
			t.Errorf("GRUU(%s, %s) = %q, want %q", c.aor, c.instance, got, c.want)
		}
	}
	for _, v := range []string{`"<urn:uuid:1>"`, `<urn:uuid:1>`, `urn:uuid:1`} {
		if got := instanceID(v); got != "<urn:uuid:1>" {
			t.Errorf("instanceID(%s) = %s", v, got)
		}
	}
}

func TestLookupGRUU(t *testing.T) {
	e := newEnv(t)
	inst := `<urn:x-test:dev?1@home!>`
	res := e.reg.Register(e.ctx, registerReq(t, alice, "g1", 1,
		`Contact: <sip:u@192.0.2.1>;+sip.instance="`+inst+`"`, "Supported: gruu"), aliceI)
	if res.StatusCode != 200 {
		t.Fatal(res.StatusCode)
	}
	ct := headers(res, "Contact")
	want := `pub-gruu="sip:6505550001@example.com;gr=urn:x-test:dev%3F1%40home!"`
	if len(ct) != 1 || !strings.Contains(ct[0], want) {
		t.Fatalf("Contact %q lacks %s", ct, want)
	}
	cases := []struct {
		gruu  string
		found bool
	}{
		{"sip:6505550001@example.com;gr=urn:x-test:dev%3F1%40home!", true},
		{"<sip:6505550002@example.com;gr=urn:x-test:dev%3F1%40home!>", true}, // another identity of the set
		{"sip:6505550001@example.com;gr=urn:uuid:other", false},
		{"sip:6505550001@example.com", false},
		{"sip:nobody@example.com;gr=urn:uuid:1", false},
		{"not a uri", false},
	}
	for _, c := range cases {
		b, err := e.reg.LookupGRUU(e.ctx, c.gruu)
		switch {
		case c.found && err != nil:
			t.Errorf("LookupGRUU(%s): %v", c.gruu, err)
		case c.found && (b.Instance != inst || b.URI != "sip:u@192.0.2.1"):
			t.Errorf("LookupGRUU(%s) = %+v", c.gruu, b)
		case !c.found && !isNotFound(err):
			t.Errorf("LookupGRUU(%s) = %v, %v; want ErrNotFound", c.gruu, b, err)
		}
	}
}
