package scscf

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"mime/multipart"
	"net/textproto"
	"strconv"
	"time"

	"github.com/emiago/sipgo/sip"

	"stillwater/diameter/hss"
	"stillwater/sip/header"
	"stillwater/sip/ifc"
)

// Sender sends a request the S-CSCF originates and returns its final
// response (the proxy core's Send).
type Sender interface {
	Send(ctx context.Context, req *sip.Request) (*sip.Response, error)
}

// thirdPartyTimeout bounds one third-party REGISTER.
const thirdPartyTimeout = 10 * time.Second

// thirdParty sends the third-party REGISTERs a registration triggers (TS
// 24.229 §5.4.1.7): for each service profile of the registration set, to
// each AS whose iFC the REGISTER matches, on behalf of the profile's first
// public identity. An AS that fails when its iFC says SESSION_TERMINATED
// has the identity de-registered by the network (§5.4.1.7 step 4).
func (s *SCSCF) thirdParty(req *sip.Request, res *sip.Response, rd *hss.RegData, initial bool) {
	if s.o.Sender == nil || rd == nil {
		return
	}
	regType := ifc.RegistrationTypeOf(req, initial)
	expires := grantedExpires(res)
	if regType == ifc.DeRegistration {
		expires = 0
	}
	cfg := s.ifcCfg.Load()
	for _, p := range rd.ServiceProfiles {
		impu := ""
		for _, id := range p.PublicIDs {
			if !id.Barred && !id.Wildcard() {
				impu = id.Identity
				break
			}
		}
		if impu == "" || p.IFC == "" {
			continue
		}
		ifcs, _ := s.profiles.get(p.IFC, cfg, s.log)
		invoke, _ := cfg.Invocations(ifcs, req, ifc.Case{Session: ifc.OriginatingRegistered, Registration: regType})
		for _, f := range invoke {
			go s.sendThirdParty(f.AS, impu, req, res, expires)
		}
	}
}

// grantedExpires is the longest expiry a 200 OK to a REGISTER granted.
func grantedExpires(res *sip.Response) int {
	longest := 0
	for _, h := range header.Get(res, "Contact") {
		if c, ok := h.(*sip.ContactHeader); ok {
			if v, ok := c.Params.Get("expires"); ok {
				if n, err := strconv.Atoi(v); err == nil && n > longest {
					longest = n
				}
			}
		}
	}
	return longest
}

func (s *SCSCF) sendThirdParty(as ifc.ApplicationServer, impu string, req *sip.Request, res *sip.Response, expires int) {
	target, err := asURI(as.ServerName)
	if err != nil {
		s.log.Warn("iFC names an AS that is not a SIP URI; no third-party REGISTER", "as", as.ServerName)
		return
	}
	target.UriParams.Remove("lr")
	tp := sip.NewRequest(sip.REGISTER, target)
	tag := make([]byte, 8)
	rand.Read(tag)
	callID := make([]byte, 12)
	rand.Read(callID)
	me := s.rrURI()
	me.UriParams.Remove("lr")
	tp.AppendHeader(sip.NewHeader("From", "<"+me.String()+">;tag="+hex.EncodeToString(tag)))
	tp.AppendHeader(sip.NewHeader("To", "<"+impu+">"))
	cid := sip.CallIDHeader(hex.EncodeToString(callID) + "@" + me.Host)
	tp.AppendHeader(&cid)
	tp.AppendHeader(&sip.CSeqHeader{SeqNo: 1, MethodName: sip.REGISTER})
	tp.AppendHeader(sip.NewHeader("Contact", "<"+me.String()+">"))
	tp.AppendHeader(sip.NewHeader("Expires", strconv.Itoa(expires)))
	if pcv := header.First(req, "P-Charging-Vector"); pcv != nil {
		tp.AppendHeader(sip.NewHeader("P-Charging-Vector", pcv.Value()))
	}
	if ct, body := thirdPartyBody(as, req, res, s.o.ForceThirdPartyBody); body != nil {
		tp.AppendHeader(sip.NewHeader("Content-Type", ct))
		tp.SetBody(body)
	}
	cl := sip.ContentLengthHeader(len(tp.Body()))
	tp.AppendHeader(&cl)
	ctx, cancel := context.WithTimeout(context.Background(), thirdPartyTimeout)
	defer cancel()
	r, err := s.o.Sender.Send(ctx, tp)
	failed := err != nil || r.StatusCode == 408 || r.StatusCode >= 500
	if !failed {
		return
	}
	status := "no response"
	if r != nil {
		status = strconv.Itoa(r.StatusCode)
	}
	s.log.Warn("third-party REGISTER failed", "as", as.ServerName, "impu", impu, "status", status, "err", err)
	if as.DefaultHandling == ifc.SessionTerminated && expires > 0 {
		dctx, dcancel := context.WithTimeout(context.Background(), thirdPartyTimeout)
		defer dcancel()
		if err := s.o.Registrar.Deregister(dctx, impu); err != nil {
			s.log.Warn("network-initiated de-registration failed", "impu", impu, "err", err)
		}
	}
}

// thirdPartyBody is what the iFC asks a third-party REGISTER to carry: the
// ServiceInfo (application/3gpp-ims+xml) and the REGISTER and its response
// (message/sip); several parts make a multipart/mixed body.
func thirdPartyBody(as ifc.ApplicationServer, req *sip.Request, res *sip.Response, force bool) (string, []byte) {
	type part struct {
		ct   string
		body []byte
	}
	var parts []part
	if as.ServiceInfo != "" {
		var b bytes.Buffer
		b.WriteString(`<?xml version="1.0" encoding="UTF-8"?>` + "\n<ims-3gpp version=\"1\"><service-info>")
		xmlEscape(&b, as.ServiceInfo)
		b.WriteString("</service-info></ims-3gpp>")
		parts = append(parts, part{"application/3gpp-ims+xml", b.Bytes()})
	}
	if as.IncludeRegisterRequest || force {
		parts = append(parts, part{"message/sip", []byte(req.String())})
	}
	if as.IncludeRegisterResponse || force {
		parts = append(parts, part{"message/sip", []byte(res.String())})
	}
	switch len(parts) {
	case 0:
		return "", nil
	case 1:
		return parts[0].ct, parts[0].body
	}
	var b bytes.Buffer
	w := multipart.NewWriter(&b)
	for _, p := range parts {
		pw, err := w.CreatePart(textproto.MIMEHeader{"Content-Type": {p.ct}})
		if err != nil {
			return "", nil
		}
		pw.Write(p.body)
	}
	w.Close()
	return fmt.Sprintf("multipart/mixed;boundary=%s", w.Boundary()), b.Bytes()
}

func xmlEscape(b *bytes.Buffer, s string) {
	for _, r := range s {
		switch r {
		case '<':
			b.WriteString("&lt;")
		case '>':
			b.WriteString("&gt;")
		case '&':
			b.WriteString("&amp;")
		default:
			b.WriteRune(r)
		}
	}
}
