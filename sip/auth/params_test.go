package auth

import (
	"errors"
	"testing"
)

func TestParseCredentials(t *testing.T) {
	for _, tc := range []struct {
		name    string
		in      string
		want    credentials
		wantErr bool
		notOurs bool
	}{
		{name: "RFC 3261 example with qop",
			in: `Digest username="bob", realm="atlanta.example.com", nonce="ea9c8e88df84f1cec4341ae6cbe5a359", opaque="", uri="sips:ss2.biloxi.example.com", response="dfe56131d1958046689d83306477ecc", qop=auth, nc=00000001, cnonce="0a4f113b"`,
			want: credentials{username: "bob", realm: "atlanta.example.com", nonce: "ea9c8e88df84f1cec4341ae6cbe5a359",
				uri: "sips:ss2.biloxi.example.com", response: "dfe56131d1958046689d83306477ecc", qop: "auth", nc: 1, cnonce: "0a4f113b"}},
		{name: "case-insensitive scheme and names, tabs, escapes",
			in:   "digest\tUserName = \"a\\\"b\" ,\tREALM=\"r\",Algorithm=AKAv1-MD5",
			want: credentials{username: `a"b`, realm: "r", algorithm: "AKAv1-MD5"}},
		{name: "IMS parameters",
			in:   `Digest username="ue@ims.example.com", realm="ims.example.com", nonce="", uri="sip:ims.example.com", response="", auts="AAAA", integrity-protected="IP-Assoc-Yes"`,
			want: credentials{username: "ue@ims.example.com", realm: "ims.example.com", uri: "sip:ims.example.com", auts: "AAAA", integrity: "ip-assoc-yes"}},
		{name: "unknown parameters are ignored", in: `Digest username="a", x-vendor=1`, want: credentials{username: "a"}},
		{name: "other scheme", in: `Basic YWxhZGRpbjpvcGVuc2VzYW1l`, notOurs: true},
		{name: "scheme alone", in: `Digest`, wantErr: true},
		{name: "trailing comma", in: `Digest username="a",`, wantErr: true},
		{name: "empty value", in: `Digest username=`, wantErr: true},
		{name: "escape at the end", in: `Digest username="a\`, wantErr: true},
		{name: "nc too long", in: `Digest nc=000000001`, wantErr: true},
		{name: "nc not hex", in: `Digest nc=0000000g`, wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseCredentials(tc.in)
			switch {
			case tc.notOurs:
				if !errors.Is(err, errNotDigest) {
					t.Fatalf("err = %v, want errNotDigest", err)
				}
			case tc.wantErr:
				if err == nil || errors.Is(err, errNotDigest) {
					t.Fatalf("err = %v, want a syntax error", err)
				}
			case err != nil:
				t.Fatal(err)
			case *got != tc.want:
				t.Fatalf("got %+v\nwant %+v", *got, tc.want)
			}
		})
	}
}
