package icscf_test

import (
	"context"
	"errors"
	"testing"

	"github.com/emiago/sipgo/sip"

	"stillwater/sip/icscf"
	"stillwater/sip/siptest"
)

// fakeENUM answers from a table.
type fakeENUM map[string]string

func (f fakeENUM) Translate(_ context.Context, number string) (string, error) {
	if u, ok := f[number]; ok {
		return u, nil
	}
	return "", errors.New("no entry")
}

// TestENUMForUnknownNumbers: a number the HSS does not know is translated
// by ENUM; a result in another domain leaves the home network, a home
// result reaches the home user, and a number ENUM does not know is 404.
func TestENUMForUnknownNumbers(t *testing.T) {
	s := siptest.New(t, siptest.Options{})
	trunk := siptest.NewUE(t)
	callee := siptest.NewUE(t)
	s.MustRegister(callee, siptest.Bob, "")
	caller := siptest.NewUE(t)
	s.MustRegister(caller, siptest.Alice, "")
	s.Core.Handle("icscf", icscf.New(icscf.Options{
		HSS: s.HSS, Default: siptest.MustURI(t, siptest.SCSCFID),
		ENUM: fakeENUM{
			"+15550001": "sip:+15550001@" + trunk.Addr(),
			"+15550002": siptest.Bob,
		},
		IsHome:  func(h string) bool { return h == siptest.HomeDomain },
		IsLocal: func(u sip.Uri) bool { _, ok := s.Core.LocalService(&u); return ok },
	}))

	t.Run("off-net result", func(t *testing.T) {
		callID, _ := s.Invite(caller.On(t), siptest.Alice, "tel:+15550001")
		in := trunk.On(t).Expect(sip.INVITE, callID)
		if got := in.Req().Recipient.User; got != "+15550001" {
			t.Errorf("trunk got Request-URI %s", in.Req().Recipient.String())
		}
		trunk.On(t).Answer(in, 486, "Busy Here")
		if res := caller.On(t).Final(callID, sip.INVITE); res.StatusCode != 486 {
			t.Errorf("caller got %d, want the trunk's 486", res.StatusCode)
		}
	})
	t.Run("home result", func(t *testing.T) {
		callID, _ := s.Invite(caller.On(t), siptest.Alice, "tel:+15550002")
		in := callee.On(t).Expect(sip.INVITE, callID)
		callee.On(t).Answer(in, 486, "Busy Here")
		if res := caller.On(t).Final(callID, sip.INVITE); res.StatusCode != 486 {
			t.Errorf("caller got %d, want the home user's 486", res.StatusCode)
		}
	})
	t.Run("no entry", func(t *testing.T) {
		callID, inv := s.Invite(caller.On(t), siptest.Alice, "tel:+15559999")
		res := caller.On(t).Final(callID, sip.INVITE)
		if res.StatusCode != 404 {
			t.Errorf("caller got %d, want 404", res.StatusCode)
		}
		s.AckFailure(caller, inv, res)
	})
}
