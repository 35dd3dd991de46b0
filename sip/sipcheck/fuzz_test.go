package sipcheck

import (
	"errors"
	"os"
	"testing"

	"github.com/emiago/sipgo/sip"
)

// FuzzReceive runs the receive path (Parse, then CheckRequest or
// CheckResponse) on arbitrary input: it must not panic, every error must be
// an *Error with a 4xx/5xx status, and a message that passes its check must
// survive serialization: reparsed, it keeps its method or status, Call-ID and
// CSeq and passes the check again.
func FuzzReceive(f *testing.F) {
	for _, file := range append(tortureFiles(f), "testdata/golden/400.sip", "testdata/golden/420.sip") {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		msg, err := Parse(data)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || e.Code < 400 || e.Code > 599 {
				t.Fatalf("Parse error %v is not an *Error with a 4xx/5xx status", err)
			}
			if req, ok := msg.(*sip.Request); ok {
				_, _ = e.Response(req, "t") // must not panic
			}
			return
		}
		switch m := msg.(type) {
		case *sip.Request:
			if e := CheckRequest(m); e != nil {
				if e.Code < 400 || e.Code > 599 {
					t.Fatalf("CheckRequest status %d", e.Code)
				}
				_, _ = e.Response(m, "t")
				return
			}
			again := reparse(t, m.String())
			r2, ok := again.(*sip.Request)
			if !ok {
				t.Fatalf("request reparsed as %T", again)
			}
			if r2.Method != m.Method || r2.CallID().Value() != m.CallID().Value() || r2.CSeq().Value() != m.CSeq().Value() {
				t.Fatalf("round trip changed %s / %s / %s into %s / %s / %s",
					m.Method, m.CallID().Value(), m.CSeq().Value(), r2.Method, r2.CallID().Value(), r2.CSeq().Value())
			}
			if e := CheckRequest(r2); e != nil {
				t.Fatalf("reparsed request rejected: %v\n%s", e, m.String())
			}
		case *sip.Response:
			if CheckResponse(m) != nil {
				return
			}
			again := reparse(t, m.String())
			r2, ok := again.(*sip.Response)
			if !ok {
				t.Fatalf("response reparsed as %T", again)
			}
			if r2.StatusCode != m.StatusCode || r2.CallID().Value() != m.CallID().Value() || r2.CSeq().Value() != m.CSeq().Value() {
				t.Fatalf("round trip changed the response")
			}
			if err := CheckResponse(r2); err != nil {
				t.Fatalf("reparsed response rejected: %v", err)
			}
		default:
			t.Fatalf("Parse returned %T and no error", msg)
		}
	})
}

func reparse(t *testing.T, s string) sip.Message {
	t.Helper()
	m, err := Parse([]byte(s))
	if err != nil {
		t.Fatalf("reparse of a valid message failed: %v\n%q", err, s)
	}
	return m
}
