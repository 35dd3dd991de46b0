package scscf

import (
	"bytes"
	"io"
	"mime"
	"mime/multipart"
	"strings"
	"testing"

	"github.com/emiago/sipgo/sip"

	"stillwater/sip/ifc"
)

func TestThirdPartyBody(t *testing.T) {
	var u sip.Uri
	sip.ParseUri("sip:example.com", &u)
	req := sip.NewRequest(sip.REGISTER, u)
	req.AppendHeader(sip.NewHeader("To", "<sip:alice@example.com>"))
	res := sip.NewResponse(200, "OK")
	for _, tc := range []struct {
		name  string
		as    ifc.ApplicationServer
		force bool
		want  []string // content types of the parts, in order
	}{
		{name: "nothing asked", as: ifc.ApplicationServer{}},
		{name: "service info only", as: ifc.ApplicationServer{ServiceInfo: "a<b"}, want: []string{"application/3gpp-ims+xml"}},
		{name: "request only", as: ifc.ApplicationServer{IncludeRegisterRequest: true}, want: []string{"message/sip"}},
		{name: "all three", as: ifc.ApplicationServer{ServiceInfo: "x", IncludeRegisterRequest: true, IncludeRegisterResponse: true},
			want: []string{"application/3gpp-ims+xml", "message/sip", "message/sip"}},
		{name: "forced by force_third_party_reg_body", as: ifc.ApplicationServer{}, force: true, want: []string{"message/sip", "message/sip"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ct, body := thirdPartyBody(tc.as, req, res, tc.force)
			var got []string
			switch {
			case body == nil:
			case strings.HasPrefix(ct, "multipart/mixed"):
				_, params, err := mime.ParseMediaType(ct)
				if err != nil {
					t.Fatal(err)
				}
				r := multipart.NewReader(bytes.NewReader(body), params["boundary"])
				for {
					p, err := r.NextPart()
					if err == io.EOF {
						break
					}
					if err != nil {
						t.Fatal(err)
					}
					got = append(got, p.Header.Get("Content-Type"))
				}
			default:
				got = []string{ct}
			}
			if strings.Join(got, ",") != strings.Join(tc.want, ",") {
				t.Fatalf("parts %q, want %q", got, tc.want)
			}
			if tc.as.ServiceInfo == "a<b" && !strings.Contains(string(body), "<service-info>a&lt;b</service-info>") {
				t.Errorf("service info not escaped: %s", body)
			}
		})
	}
}

func TestGrantedExpires(t *testing.T) {
	res := sip.NewResponse(200, "OK")
	for _, v := range []string{"<sip:a@1.2.3.4>;expires=300", "<sip:b@1.2.3.4>;expires=3600"} {
		var c sip.ContactHeader
		addr, params := v[:strings.Index(v, ";")], v[strings.Index(v, ";")+1:]
		sip.ParseUri(strings.Trim(addr, "<>"), &c.Address)
		c.Params = sip.NewParams()
		k, val, _ := strings.Cut(params, "=")
		c.Params.Add(k, val)
		res.AppendHeader(&c)
	}
	if got := grantedExpires(res); got != 3600 {
		t.Fatalf("granted %d, want 3600", got)
	}
}
