package homestead

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"

	"stillwater/diameter/hss"
)

// prov is the Homestead-prov API.
type prov struct {
	store *hss.Store
	log   *slog.Logger
}

// NewProvHandler returns the Homestead-prov API over store (served on port
// 8889): private identities, implicit registration sets, service profiles,
// public identities and iFCs, plus POST /bulk/subscribers for bulk
// provisioning and GET /public/ to list the public identities.
func NewProvHandler(store *hss.Store, opts ...Option) http.Handler {
	o := newOptions(opts)
	p := &prov{store: store, log: o.log.With("component", "homestead-prov")}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ping", ping)

	mux.HandleFunc("GET /private/{impi}", p.getPrivate)
	mux.HandleFunc("PUT /private/{impi}", p.putPrivate)
	mux.HandleFunc("DELETE /private/{impi}", p.deletePrivate)
	for _, suffix := range []string{"", "/{$}"} {
		mux.HandleFunc("GET /private/{impi}/associated_implicit_registration_sets"+suffix, p.privateIRSs)
		mux.HandleFunc("GET /private/{impi}/associated_public_ids"+suffix, p.privatePublics)
		mux.HandleFunc("GET /irs/{irs}/public_ids"+suffix, p.irsPublics)
		mux.HandleFunc("GET /irs/{irs}/private_ids"+suffix, p.irsPrivates)
		mux.HandleFunc("GET /public/{impu}/irs"+suffix, p.publicIRS)
		mux.HandleFunc("GET /public/{impu}/service_profile"+suffix, p.publicSP)
		mux.HandleFunc("GET /public/{impu}/associated_private_ids"+suffix, p.publicPrivates)
	}
	mux.HandleFunc("PUT /private/{impi}/associated_implicit_registration_sets/{irs}", p.associate)
	mux.HandleFunc("DELETE /private/{impi}/associated_implicit_registration_sets/{irs}", p.dissociate)
	mux.HandleFunc("PUT /irs/{irs}/private_ids/{impi}", p.associate)
	mux.HandleFunc("DELETE /irs/{irs}/private_ids/{impi}", p.dissociate)

	mux.HandleFunc("POST /irs", p.createIRS)
	mux.HandleFunc("POST /irs/{$}", p.createIRS)
	mux.HandleFunc("GET /irs/{irs}", p.getIRS)
	mux.HandleFunc("DELETE /irs/{irs}", p.deleteIRS)
	// Homestead-prov's own Location headers have used both spellings.
	for _, sps := range []string{"service_profiles", "service_profile"} {
		base := "/irs/{irs}/" + sps
		mux.HandleFunc("POST "+base, p.createSP)
		mux.HandleFunc("DELETE "+base+"/{sp}", p.deleteSP)
		mux.HandleFunc("GET "+base+"/{sp}/public_ids", p.spPublics)
		mux.HandleFunc("GET "+base+"/{sp}/public_ids/{impu}", p.getPublic)
		mux.HandleFunc("PUT "+base+"/{sp}/public_ids/{impu}", p.putPublic)
		mux.HandleFunc("DELETE "+base+"/{sp}/public_ids/{impu}", p.deletePublic)
		mux.HandleFunc("GET "+base+"/{sp}/filter_criteria", p.getIFC)
		mux.HandleFunc("PUT "+base+"/{sp}/filter_criteria", p.putIFC)
	}
	mux.HandleFunc("GET /public/{$}", p.listPublics)
	mux.HandleFunc("POST /bulk/subscribers", p.bulk)
	return mux
}

func ping(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain")
	w.Write([]byte("OK"))
}

// ok answers a successful change with an empty 200, as Homestead-prov does.
func ok(w http.ResponseWriter) { w.WriteHeader(http.StatusOK) }

// privateBody is the JSON of /private/<impi>.
type privateBody struct {
	DigestHA1         string `json:"digest_ha1,omitempty"`
	PlaintextPassword string `json:"plaintext_password,omitempty"`
	Realm             string `json:"realm,omitempty"`
	AKA               *AKA   `json:"aka,omitempty"`
}

func (p *prov) getPrivate(w http.ResponseWriter, r *http.Request) {
	priv, err := p.store.GetPrivate(r.Context(), r.PathValue("impi"))
	if err != nil {
		fail(w, r, p.log, err)
		return
	}
	body := privateBody{DigestHA1: priv.DigestHA1, PlaintextPassword: priv.PlaintextPassword, Realm: priv.Realm}
	if priv.AKA != nil {
		body.AKA = &AKA{AMF: fmt.Sprintf("%04x", priv.AKA.AMF), SQN: fmt.Sprintf("%012x", priv.AKA.SQN)}
	}
	writeJSON(w, http.StatusOK, body)
}

func (p *prov) putPrivate(w http.ResponseWriter, r *http.Request) {
	raw, err := readBody(w, r, maxBody)
	if err != nil {
		fail(w, r, p.log, err)
		return
	}
	var body privateBody
	if err := decodeJSON(raw, &body); err != nil {
		fail(w, r, p.log, err)
		return
	}
	aka, err := body.AKA.Credentials()
	if err != nil {
		fail(w, r, p.log, err)
		return
	}
	err = p.store.PutPrivate(r.Context(), r.PathValue("impi"), hss.Credentials{
		Realm: body.Realm, DigestHA1: body.DigestHA1, PlaintextPassword: body.PlaintextPassword, AKA: aka,
	})
	if err != nil {
		fail(w, r, p.log, err)
		return
	}
	ok(w)
}

func (p *prov) deletePrivate(w http.ResponseWriter, r *http.Request) {
	existed, err := p.store.DeletePrivate(r.Context(), r.PathValue("impi"))
	p.deleted(w, r, existed, err)
}

func (p *prov) privateIRSs(w http.ResponseWriter, r *http.Request) {
	ids, err := p.store.PrivateIRSs(r.Context(), r.PathValue("impi"))
	if err != nil {
		fail(w, r, p.log, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string][]string{"associated_implicit_registration_sets": ids})
}

func (p *prov) privatePublics(w http.ResponseWriter, r *http.Request) {
	ids, err := p.store.PrivatePublicIDs(r.Context(), r.PathValue("impi"))
	if err != nil {
		fail(w, r, p.log, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string][]string{"associated_public_ids": ids})
}

func (p *prov) associate(w http.ResponseWriter, r *http.Request) {
	if err := requireEmpty(w, r); err != nil {
		fail(w, r, p.log, err)
		return
	}
	if err := p.store.AssociateIRS(r.Context(), r.PathValue("impi"), r.PathValue("irs")); err != nil {
		fail(w, r, p.log, err)
		return
	}
	ok(w)
}

func (p *prov) dissociate(w http.ResponseWriter, r *http.Request) {
	existed, err := p.store.DissociateIRS(r.Context(), r.PathValue("impi"), r.PathValue("irs"))
	p.deleted(w, r, existed, err)
}

func (p *prov) createIRS(w http.ResponseWriter, r *http.Request) {
	if err := requireEmpty(w, r); err != nil {
		fail(w, r, p.log, err)
		return
	}
	id, err := p.store.CreateIRS(r.Context())
	if err != nil {
		fail(w, r, p.log, err)
		return
	}
	w.Header().Set("Location", "/irs/"+id)
	w.WriteHeader(http.StatusCreated)
}

// irsBody is GET /irs/<id>: the set at a glance.
type irsBody struct {
	ServiceProfiles []spBody `json:"service_profiles"`
	PrivateIDs      []string `json:"private_ids"`
}

type spBody struct {
	ID        string   `json:"id"`
	PublicIDs []string `json:"public_ids"`
	HasIFC    bool     `json:"filter_criteria"`
}

func (p *prov) getIRS(w http.ResponseWriter, r *http.Request) {
	irs, err := p.store.GetIRS(r.Context(), r.PathValue("irs"))
	if err != nil {
		fail(w, r, p.log, err)
		return
	}
	body := irsBody{ServiceProfiles: []spBody{}, PrivateIDs: irs.PrivateIDs}
	for _, sp := range irs.ServiceProfiles {
		b := spBody{ID: sp.ID, PublicIDs: []string{}, HasIFC: sp.HasIFC}
		for _, pub := range sp.PublicIDs {
			b.PublicIDs = append(b.PublicIDs, pub.Identity)
		}
		body.ServiceProfiles = append(body.ServiceProfiles, b)
	}
	writeJSON(w, http.StatusOK, body)
}

func (p *prov) deleteIRS(w http.ResponseWriter, r *http.Request) {
	existed, err := p.store.DeleteIRS(r.Context(), r.PathValue("irs"))
	p.deleted(w, r, existed, err)
}

func (p *prov) irsPublics(w http.ResponseWriter, r *http.Request) {
	irs, err := p.store.GetIRS(r.Context(), r.PathValue("irs"))
	if err != nil {
		fail(w, r, p.log, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string][]string{"public_ids": irs.PublicIDs()})
}

func (p *prov) irsPrivates(w http.ResponseWriter, r *http.Request) {
	irs, err := p.store.GetIRS(r.Context(), r.PathValue("irs"))
	if err != nil {
		fail(w, r, p.log, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string][]string{"private_ids": irs.PrivateIDs})
}

func (p *prov) createSP(w http.ResponseWriter, r *http.Request) {
	if err := requireEmpty(w, r); err != nil {
		fail(w, r, p.log, err)
		return
	}
	irs := r.PathValue("irs")
	id, err := p.store.CreateServiceProfile(r.Context(), irs)
	if err != nil {
		fail(w, r, p.log, err)
		return
	}
	w.Header().Set("Location", spPath(irs, id))
	w.WriteHeader(http.StatusCreated)
}

func spPath(irs, sp string) string {
	return "/irs/" + url.PathEscape(irs) + "/service_profiles/" + url.PathEscape(sp)
}

func (p *prov) deleteSP(w http.ResponseWriter, r *http.Request) {
	existed, err := p.store.DeleteServiceProfile(r.Context(), r.PathValue("irs"), r.PathValue("sp"))
	p.deleted(w, r, existed, err)
}

func (p *prov) spPublics(w http.ResponseWriter, r *http.Request) {
	ids, err := p.store.ServiceProfilePublicIDs(r.Context(), r.PathValue("irs"), r.PathValue("sp"))
	if err != nil {
		fail(w, r, p.log, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string][]string{"public_ids": ids})
}

func (p *prov) getPublic(w http.ResponseWriter, r *http.Request) {
	pub, err := p.store.GetPublicID(r.Context(), r.PathValue("irs"), r.PathValue("sp"), r.PathValue("impu"))
	if err != nil {
		fail(w, r, p.log, err)
		return
	}
	writeXML(w, http.StatusOK, []byte(pub.XML))
}

func (p *prov) putPublic(w http.ResponseWriter, r *http.Request) {
	body, err := readBody(w, r, maxBody)
	if err == nil {
		err = p.store.PutPublicID(r.Context(), r.PathValue("irs"), r.PathValue("sp"), r.PathValue("impu"), body)
	}
	if err != nil {
		fail(w, r, p.log, err)
		return
	}
	ok(w)
}

func (p *prov) deletePublic(w http.ResponseWriter, r *http.Request) {
	if err := p.store.DeletePublicID(r.Context(), r.PathValue("irs"), r.PathValue("sp"), r.PathValue("impu")); err != nil {
		fail(w, r, p.log, err)
		return
	}
	ok(w)
}

func (p *prov) getIFC(w http.ResponseWriter, r *http.Request) {
	doc, err := p.store.FilterCriteria(r.Context(), r.PathValue("irs"), r.PathValue("sp"))
	if err != nil {
		fail(w, r, p.log, err)
		return
	}
	writeXML(w, http.StatusOK, doc)
}

func (p *prov) putIFC(w http.ResponseWriter, r *http.Request) {
	body, err := readBody(w, r, maxBody)
	if err == nil {
		err = p.store.PutFilterCriteria(r.Context(), r.PathValue("irs"), r.PathValue("sp"), body)
	}
	if err != nil {
		fail(w, r, p.log, err)
		return
	}
	ok(w)
}

func (p *prov) publicIRS(w http.ResponseWriter, r *http.Request) {
	pub, err := p.store.LookupPublicID(r.Context(), r.PathValue("impu"))
	if err != nil {
		fail(w, r, p.log, err)
		return
	}
	http.Redirect(w, r, "/irs/"+url.PathEscape(pub.IRS), http.StatusSeeOther)
}

func (p *prov) publicSP(w http.ResponseWriter, r *http.Request) {
	pub, err := p.store.LookupPublicID(r.Context(), r.PathValue("impu"))
	if err != nil {
		fail(w, r, p.log, err)
		return
	}
	http.Redirect(w, r, spPath(pub.IRS, pub.ServiceProfile), http.StatusSeeOther)
}

func (p *prov) publicPrivates(w http.ResponseWriter, r *http.Request) {
	ids, err := p.store.PublicPrivateIDs(r.Context(), r.PathValue("impu"))
	if err != nil {
		fail(w, r, p.log, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string][]string{"private_ids": ids})
}

// listPublics streams every public identity as {"public_ids": [...]}, one
// per line, so that a listing of millions needs no memory here and the
// client's pace holds the scan back.
func (p *prov) listPublics(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Write([]byte("{\"public_ids\": [\n"))
	first := true
	err := p.store.EachPublicID(r.Context(), func(impu string) error {
		var b strings.Builder
		if !first {
			b.WriteString(",\n")
		}
		first = false
		b.WriteString(quoteJSON(impu))
		_, err := w.Write([]byte(b.String()))
		return err
	})
	if err != nil {
		// The status is sent: leave the document unterminated so that the
		// client sees a truncated listing, not a short one.
		p.log.Error("listing public identities", "err", err)
		return
	}
	w.Write([]byte("\n]}\n"))
}

// deleted answers a DELETE as Homestead-prov did: 200 when something was
// removed, 204 when there was nothing to remove.
func (p *prov) deleted(w http.ResponseWriter, r *http.Request, existed bool, err error) {
	switch {
	case err != nil:
		fail(w, r, p.log, err)
	case !existed:
		w.WriteHeader(http.StatusNoContent)
	default:
		ok(w)
	}
}
