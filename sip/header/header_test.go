package header

import (
	"testing"

	"github.com/emiago/sipgo/sip"
)

func TestCanonical(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"sip:alice@Example.COM;transport=tcp", "sip:alice@example.com"},
		{"sips:bob@example.com:5061", "sips:bob@example.com"},
		{"tel:+16505550001;phone-context=example.com", "tel:+16505550001"},
		{"tel:+16505550001", "tel:+16505550001"},
		{"sip:example.com", "sip:example.com"},
	} {
		var u sip.Uri
		if err := sip.ParseUri(tc.in, &u); err != nil {
			t.Fatal(err)
		}
		if got := Canonical(u); got != tc.want {
			t.Errorf("Canonical(%s) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

func TestSplitList(t *testing.T) {
	got := SplitList(`"Smith, J" <sip:a@b>;x=1, <sip:c@d;p=a,b>, sip:e@f`)
	want := []string{`"Smith, J" <sip:a@b>;x=1`, `<sip:c@d;p=a,b>`, `sip:e@f`}
	if len(got) != len(want) {
		t.Fatalf("got %q", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("entry %d: %q, want %q", i, got[i], want[i])
		}
	}
}
