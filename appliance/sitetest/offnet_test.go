package sitetest

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"stillwater/sip/resolve/dnstest"
)

// enumIP is where the test ENUM server listens, on the standard DNS port
// (enum_server takes addresses only): an address no node or other test
// endpoint uses.
const enumIP = "127.0.5.3"

// enumDomain is the e164.arpa name of an E.164 number (RFC 6116 §2.4).
func enumDomain(number string) string {
	digits := strings.TrimPrefix(number, "+")
	var b strings.Builder
	for i := len(digits) - 1; i >= 0; i-- {
		b.WriteByte(digits[i])
		b.WriteByte('.')
	}
	return b.String() + "e164.arpa."
}

// naptr is a terminal E2U+sip rule for number with the given regexp.
func naptr(number, regexp string) string {
	return fmt.Sprintf(`%s 60 IN NAPTR 10 100 "u" "E2U+sip" "%s" .`, enumDomain(number), regexp)
}

// uploadConfig replaces a shared document with `stillwater config upload`
// and waits until the node has put it in force.
func uploadConfig(t *testing.T, n *node, name string, content []byte) {
	t.Helper()
	file := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(file, content, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, errOut, err := n.cli("config", "upload", name, file); err != nil {
		t.Fatalf("config upload %s: %v\n%s%s", name, err, out, errOut)
	}
	waitNodeLog(t, n, 30*time.Second, "shared document applied", "name="+name)
}

// TestOffNet routes calls by ENUM and the BGCF: numbers that ENUM (a real
// DNS server on 127.0.5.3:53) maps to another domain, or that have no ENUM
// entry, go through bgcf.json's route to a trunk on 127.0.0.6, which
// answers; a number ENUM maps to a home user reaches that user.
func TestOffNet(t *testing.T) {
	skipIfShort(t)
	const (
		trunkDomain = "trunk.test"
		viaDomain1  = "+15551230001" // ENUM: sip:<number>@trunk.test
		viaDomain2  = "+15551230002"
		noENUM      = "+15559990001" // no ENUM entry: routed by number prefix
	)
	callee := 6505557002
	home := "+1" + strconv.Itoa(callee)
	enum := dnstest.Start(t, dnstest.Options{Addr: enumIP + ":53"},
		naptr(viaDomain1, "!^.*$!sip:"+viaDomain1+"@"+trunkDomain+"!"),
		naptr(viaDomain2, "!^.*$!sip:"+viaDomain2+"@"+trunkDomain+"!"),
		naptr(home, `!^\\+1(.*)$!sip:\\1@`+imsRealm+"!"),
	)
	s := newSite(t, siteOpts{nodes: 1, shared: imsShared + "enum_server=" + enumIP + "\n"})
	n := s.node(1)
	trunk := newTestAS(t, "127.0.0.6")
	route := []string{trunk.uri(asAnswer, "trunk") + ";lr"}
	bgcf, err := json.Marshal(map[string]any{"routes": []map[string]any{
		{"name": "trunk by domain", "domain": trunkDomain, "route": route},
		{"name": "trunk by number", "number": "+1555999", "route": route},
	}})
	if err != nil {
		t.Fatal(err)
	}
	uploadConfig(t, n, "bgcf_json", bgcf)

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	users := sipUsers(t, n, 6505557001, 2)
	caller := registeredUE(t, ctx, n, users[0])
	homeUE := registeredUE(t, ctx, n, users[1])

	tests := []struct {
		name  string
		ruri  string
		trunk string // the Request-URI the trunk must see; "" for the home user
		enum  string // the number ENUM must have been asked about
	}{
		{name: "tel URI by ENUM and domain route", ruri: "tel:" + viaDomain1, trunk: "sip:" + viaDomain1 + "@" + trunkDomain, enum: viaDomain1},
		{name: "user=phone SIP URI by ENUM and domain route", ruri: "sip:" + viaDomain2 + "@" + imsRealm + ";user=phone",
			trunk: "sip:" + viaDomain2 + "@" + trunkDomain, enum: viaDomain2},
		{name: "tel URI without ENUM entry by number route", ruri: "tel:" + noENUM, trunk: "tel:" + noENUM, enum: noENUM},
		{name: "ENUM result is a home user", ruri: "tel:" + home, enum: home},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
			defer cancel()
			trunkHits, homeInvites := len(trunk.hits.all()), len(homeUE.invites.all())
			trunkAcks, trunkByes := len(trunk.acks.all()), len(trunk.byes.all())
			c, err := caller.call(ctx, tc.ruri)
			if err != nil {
				t.Fatal(err)
			}
			if c.final.StatusCode != 200 {
				t.Fatalf("call to %s: %d %s, want 200", tc.ruri, c.final.StatusCode, c.final.Reason)
			}
			if got := enum.Count(enumDomain(tc.enum), ""); got == 0 {
				t.Errorf("ENUM was not asked about %s", enumDomain(tc.enum))
			}
			hits := trunk.hits.all()[trunkHits:]
			invites := homeUE.invites.all()[homeInvites:]
			if tc.trunk == "" {
				if len(hits) != 0 || len(invites) != 1 {
					t.Fatalf("trunk saw %d INVITEs and the home user %d, want 0 and 1", len(hits), len(invites))
				}
			} else {
				if len(hits) != 1 || len(invites) != 0 {
					t.Fatalf("trunk saw %d INVITEs and the home user %d, want 1 and 0", len(hits), len(invites))
				}
				if got := hits[0].req.Recipient.String(); got != tc.trunk {
					t.Errorf("trunk's Request-URI %s, want %s", got, tc.trunk)
				}
				if _, err := trunk.acks.wait(ctx, "the trunk's ACK", atLeast[*sip.Request](trunkAcks+1)); err != nil {
					t.Fatal(err)
				}
			}
			if err := caller.hangUp(ctx, c); err != nil {
				t.Fatal(err)
			}
			if tc.trunk != "" {
				if got := len(trunk.byes.all()); got != trunkByes+1 {
					t.Errorf("trunk saw %d BYEs, want 1", got-trunkByes)
				}
			} else if _, err := homeUE.byes.wait(ctx, "the home user's BYE", atLeast[*sip.Request](1)); err != nil {
				t.Fatal(err)
			}
		})
	}
}
