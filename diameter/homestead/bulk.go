package homestead

import (
	"encoding/json"
	"fmt"
	"net/http"

	"stillwater/diameter/hss"
)

// BulkRequest is the body of POST /bulk/subscribers: complete subscribers
// to create in one request (at most hss.MaxBulk).
type BulkRequest struct {
	// IFC is the iFC document of subscribers that give none; "" means the
	// node's default (the MMTEL application server).
	IFC         string           `json:"ifc,omitempty"`
	Subscribers []BulkSubscriber `json:"subscribers"`
}

// BulkSubscriber is one subscriber of a bulk request; the columns of
// Clearwater's bulk provisioning CSV, plus the optional extras.
type BulkSubscriber struct {
	PublicID  string `json:"public_id"`
	PrivateID string `json:"private_id,omitempty"`
	Realm     string `json:"realm,omitempty"`
	Password  string `json:"password,omitempty"`
	// Plaintext keeps the password in plaintext as well as its digest.
	Plaintext bool   `json:"plaintext,omitempty"`
	DigestHA1 string `json:"digest_ha1,omitempty"`
	IFC       string `json:"ifc,omitempty"`
	AKA       *AKA   `json:"aka,omitempty"`
}

// BulkResponse reports a bulk request: how many subscribers were created,
// which public identities were already there (and left alone), and which
// subscribers were refused and why.
type BulkResponse struct {
	Created int           `json:"created"`
	Skipped []string      `json:"skipped"`
	Failed  []BulkFailure `json:"failed"`
}

// BulkFailure is a refused subscriber.
type BulkFailure struct {
	PublicID string `json:"public_id"`
	Error    string `json:"error"`
}

func (p *prov) bulk(w http.ResponseWriter, r *http.Request) {
	raw, err := readBody(w, r, maxBulkBody)
	if err != nil {
		fail(w, r, p.log, err)
		return
	}
	var req BulkRequest
	if err := decodeJSON(raw, &req); err != nil {
		fail(w, r, p.log, err)
		return
	}
	if len(req.Subscribers) > hss.MaxBulk {
		writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("%d subscribers in one request; the limit is %d", len(req.Subscribers), hss.MaxBulk))
		return
	}
	subs := make([]hss.Subscriber, 0, len(req.Subscribers))
	var failed []BulkFailure
	for _, s := range req.Subscribers {
		aka, err := s.AKA.Credentials()
		if err != nil {
			failed = append(failed, BulkFailure{PublicID: s.PublicID, Error: reason(err)})
			continue
		}
		ifc := s.IFC
		if ifc == "" {
			ifc = req.IFC
		}
		subs = append(subs, hss.Subscriber{
			PublicID: s.PublicID, PrivateID: s.PrivateID, Realm: s.Realm,
			Password: s.Password, KeepPassword: s.Plaintext, DigestHA1: s.DigestHA1, IFC: ifc, AKA: aka,
		})
	}
	res, err := p.store.Provision(r.Context(), subs)
	if err != nil {
		fail(w, r, p.log, err)
		return
	}
	out := BulkResponse{Created: res.Created, Skipped: res.Skipped, Failed: failed}
	if out.Skipped == nil {
		out.Skipped = []string{}
	}
	for _, f := range res.Failed {
		out.Failed = append(out.Failed, BulkFailure{PublicID: f.PublicID, Error: reason(fmt.Errorf("%s", f.Error))})
	}
	if out.Failed == nil {
		out.Failed = []BulkFailure{}
	}
	writeJSON(w, http.StatusOK, out)
}

func quoteJSON(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
