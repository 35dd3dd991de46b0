package auth_test

import (
	"testing"

	"stillwater/sip/auth"
)

func TestNonRegisterPolicy(t *testing.T) {
	const proxyAuthz = `Proxy-Authorization: Digest username="alice@example.com", realm="example.com", nonce="", uri="sip:bob@example.com", response=""`
	for _, tc := range []struct {
		name           string
		option         string
		method         string
		headers        []string
		digestEndpoint bool
		want           bool
		wantErr        bool
	}{
		{name: "empty option challenges nothing", option: "", method: "INVITE", headers: []string{proxyAuthz}, digestEndpoint: true},
		{name: "Proxy-Authorization present", option: "if_proxy_authorization_present", method: "INVITE", headers: []string{proxyAuthz}, want: true},
		{name: "Proxy-Authorization absent", option: "if_proxy_authorization_present", method: "INVITE"},
		{name: "initial request from a digest endpoint", option: "initial_req_from_reg_digest_endpoint", method: "MESSAGE", digestEndpoint: true, want: true},
		{name: "initial request from an AKA endpoint", option: "initial_req_from_reg_digest_endpoint", method: "MESSAGE"},
		{name: "in-dialog request", option: "initial_req_from_reg_digest_endpoint", method: "BYE", headers: []string{"X-To-Tag: yes"}, digestEndpoint: true},
		{name: "both values", option: "if_proxy_authorization_present, initial_req_from_reg_digest_endpoint", method: "INVITE", digestEndpoint: true, want: true},
		{name: "ACK is never challenged", option: "if_proxy_authorization_present", method: "ACK", headers: []string{proxyAuthz}},
		{name: "REGISTER is not a non-REGISTER", option: "if_proxy_authorization_present", method: "REGISTER", headers: []string{proxyAuthz}},
		{name: "the documentation's misspelling is refused", option: "initial_req_from_req_digest_endpoint", wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := auth.ParseNonRegisterPolicy(tc.option)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("ParseNonRegisterPolicy(%q) = %+v, want an error", tc.option, p)
				}
				return
			}
			must(t, err)
			req := request(t, tc.method, "sip:bob@example.com", aliceIMPU, tc.headers...)
			if len(tc.headers) > 0 && tc.headers[0] == "X-To-Tag: yes" {
				req.To().Params.Add("tag", "to1")
			}
			if got := p.Required(req, tc.digestEndpoint); got != tc.want {
				t.Fatalf("Required = %v, want %v", got, tc.want)
			}
		})
	}
}
