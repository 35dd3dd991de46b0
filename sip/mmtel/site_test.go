package mmtel_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/emiago/sipgo/sip"

	"stillwater/diameter/hss"
	"stillwater/sip/mmtel"
	"stillwater/sip/siptest"
	"stillwater/sip/siptest/endpoint"
)

// The site's subscribers (siptest.Alice, siptest.Bob, carol and the chain
// users) are each a line of its own with the MMTEL AS in its iFCs for
// every session case but originating-CDIV.
const (
	carol = "sip:6505550021@example.com"
	// chainUsers are lines 6505550100.. that forward to one another.
	chainUsers = 7
)

func chainUser(i int) string { return fmt.Sprintf("sip:65055501%02d@example.com", i) }

// sdpVideo is an offer of audio and video.
const sdpVideo = endpoint.SDP + "m=video 4002 RTP/AVP 96\r\n"

// mmtelIFC invokes the AS for INVITE, MESSAGE and SUBSCRIBE when the user
// calls (registered or not) and is called (registered or not), as Ellis's
// default iFCs do for INVITE.
const mmtelIFC = `<?xml version="1.0" encoding="UTF-8"?>
<ServiceProfile>
  <InitialFilterCriteria>
    <Priority>0</Priority>
    <TriggerPoint>
      <ConditionTypeCNF>1</ConditionTypeCNF>
      <SPT><ConditionNegated>0</ConditionNegated><Group>0</Group><Method>INVITE</Method></SPT>
      <SPT><ConditionNegated>0</ConditionNegated><Group>0</Group><Method>MESSAGE</Method></SPT>
      <SPT><ConditionNegated>0</ConditionNegated><Group>0</Group><Method>SUBSCRIBE</Method></SPT>
      <SPT><ConditionNegated>0</ConditionNegated><Group>1</Group><SessionCase>0</SessionCase></SPT>
      <SPT><ConditionNegated>0</ConditionNegated><Group>1</Group><SessionCase>3</SessionCase></SPT>
    </TriggerPoint>
    <ApplicationServer><ServerName>sip:mmtel.example.com</ServerName><DefaultHandling>0</DefaultHandling></ApplicationServer>
  </InitialFilterCriteria>
  <InitialFilterCriteria>
    <Priority>1</Priority>
    <TriggerPoint>
      <ConditionTypeCNF>1</ConditionTypeCNF>
      <SPT><ConditionNegated>0</ConditionNegated><Group>0</Group><Method>INVITE</Method></SPT>
      <SPT><ConditionNegated>0</ConditionNegated><Group>0</Group><Method>MESSAGE</Method></SPT>
      <SPT><ConditionNegated>0</ConditionNegated><Group>0</Group><Method>SUBSCRIBE</Method></SPT>
      <SPT><ConditionNegated>0</ConditionNegated><Group>1</Group><SessionCase>1</SessionCase></SPT>
      <SPT><ConditionNegated>0</ConditionNegated><Group>1</Group><SessionCase>2</SessionCase></SPT>
    </TriggerPoint>
    <ApplicationServer><ServerName>sip:mmtel.example.com</ServerName><DefaultHandling>0</DefaultHandling></ApplicationServer>
  </InitialFilterCriteria>
</ServiceProfile>
`

// store is the settings source of the tests: settings by IMPU, and a
// switch that makes every read fail as a store that is down would.
type store struct {
	mu   sync.Mutex
	m    map[string]*mmtel.Settings
	down bool
}

var errStoreDown = errors.New("settings store unavailable")

func (s *store) Settings(_ context.Context, impu string) (*mmtel.Settings, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.down {
		return nil, errStoreDown
	}
	return s.m[impu], nil
}

// set replaces every subscriber's settings.
func (s *store) set(down bool, m map[string]*mmtel.Settings) {
	s.mu.Lock()
	s.m, s.down = m, down
	s.mu.Unlock()
}

// site is a siptest site with the MMTEL AS, reading its settings from
// store.
type site struct {
	*siptest.Site
	store *store
}

func newSite(t *testing.T) *site {
	t.Helper()
	users := []string{siptest.Alice, siptest.Bob, carol}
	for i := range chainUsers {
		users = append(users, chainUser(i))
	}
	var lines []hss.Line
	for _, u := range users {
		lines = append(lines, hss.Line{PrivateID: strings.TrimPrefix(u, "sip:"), PublicIDs: []string{u}, Password: "pw", IFC: mmtelIFC})
	}
	st := &store{}
	return &site{Site: siptest.New(t, siptest.Options{Lines: lines, MMTEL: st}), store: st}
}

// never checks e has been sent no request of callID.
func never(e *endpoint.Endpoint, callID string) {
	e.T().Helper()
	for _, m := range e.Drain() {
		if q := m.Req(); q != nil && q.CallID().Value() == callID {
			e.T().Errorf("%s was sent %s", e.Addr(), q.Method)
		}
	}
}

// response waits for the response of status code to callID at e.
func response(e *endpoint.Endpoint, callID string, code int) *sip.Response {
	e.T().Helper()
	return e.Wait(fmt.Sprintf("%d to %s", code, callID), func(r endpoint.Rx) bool {
		s := r.Res()
		return s != nil && s.CallID().Value() == callID && s.StatusCode == code
	}).Res()
}
