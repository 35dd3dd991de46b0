package homestead

import (
	"encoding/base64"
	"fmt"
	"log/slog"
	"net/http"
	"strings"

	"stillwater/diameter/hss"
)

// api is the Homestead API.
type api struct {
	store *hss.Store
	log   *slog.Logger
}

// NewHandler returns the Homestead API over store (served on port 8888):
// authentication vectors, registration status, location and registration
// data, as Sprout asks for them.
func NewHandler(store *hss.Store, opts ...Option) http.Handler {
	o := newOptions(opts)
	a := &api{store: store, log: o.log.With("component", "homestead")}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ping", ping)
	mux.HandleFunc("GET /impi/{impi}/av", a.av)
	mux.HandleFunc("GET /impi/{impi}/av/{scheme}", a.av)
	mux.HandleFunc("GET /impi/{impi}/digest", a.digest)
	mux.HandleFunc("GET /impi/{impi}/registration-status", a.registrationStatus)
	mux.HandleFunc("GET /impu/{impu}/location", a.location)
	mux.HandleFunc("GET /impu/{impu}/reg-data", a.getRegData)
	mux.HandleFunc("PUT /impu/{impu}/reg-data", a.putRegData)
	return mux
}

type digestJSON struct {
	HA1   string `json:"ha1"`
	Realm string `json:"realm"`
	QoP   string `json:"qop"`
}

type akaJSON struct {
	Challenge    string `json:"challenge"`
	Response     string `json:"response"`
	CryptKey     string `json:"cryptkey"`
	IntegrityKey string `json:"integritykey"`
	Version      int    `json:"version"`
}

type avJSON struct {
	Digest *digestJSON `json:"digest,omitempty"`
	AKA    *akaJSON    `json:"aka,omitempty"`
}

func (a *api) av(w http.ResponseWriter, r *http.Request) {
	req := hss.AVRequest{IMPI: r.PathValue("impi"), IMPU: r.URL.Query().Get("impu")}
	switch r.PathValue("scheme") {
	case "":
	case "digest":
		req.Scheme = hss.SchemeDigest
	case "aka":
		req.Scheme = hss.SchemeAKA
	default:
		writeError(w, http.StatusNotFound, fmt.Sprintf("unsupported authentication scheme %q (want digest or aka)", r.PathValue("scheme")))
		return
	}
	if resync := r.URL.Query().Get("resync-auth"); resync != "" {
		b, err := base64.StdEncoding.DecodeString(resync)
		if err != nil {
			writeError(w, http.StatusBadRequest, "resync-auth is not base64: "+err.Error())
			return
		}
		req.Resync = b
	}
	av, err := a.store.AuthVector(r.Context(), req)
	if err != nil {
		fail(w, r, a.log, err)
		return
	}
	var body avJSON
	if d := av.Digest; d != nil {
		body.Digest = &digestJSON{HA1: d.HA1, Realm: d.Realm, QoP: d.QoP}
	}
	if k := av.AKA; k != nil {
		body.AKA = &akaJSON{
			Challenge: k.Challenge(), Response: k.Response(),
			CryptKey: fmt.Sprintf("%x", k.CK), IntegrityKey: fmt.Sprintf("%x", k.IK), Version: 1,
		}
	}
	writeJSON(w, http.StatusOK, body)
}

// digest is the older /impi/<impi>/digest?public_id= form.
func (a *api) digest(w http.ResponseWriter, r *http.Request) {
	av, err := a.store.AuthVector(r.Context(), hss.AVRequest{
		IMPI: r.PathValue("impi"), IMPU: r.URL.Query().Get("public_id"), Scheme: hss.SchemeDigest,
	})
	if err != nil {
		fail(w, r, a.log, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"digest_ha1": av.Digest.HA1})
}

// serverJSON is the I-CSCF's answer: a result code and a server name or
// capabilities.
type serverJSON struct {
	ResultCode int    `json:"result-code"`
	SCSCF      string `json:"scscf,omitempty"`
	Mandatory  *[]int `json:"mandatory-capabilities,omitempty"`
	Optional   *[]int `json:"optional-capabilities,omitempty"`
	Wildcard   string `json:"wildcard-identity,omitempty"`
}

func serverBody(info hss.ServerInfo) serverJSON {
	b := serverJSON{ResultCode: info.ResultCode, SCSCF: info.SCSCF, Wildcard: info.Wildcard}
	if c := info.Capabilities; c != nil {
		b.Mandatory, b.Optional = &c.Mandatory, &c.Optional
	}
	return b
}

func (a *api) registrationStatus(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	impu := q.Get("impu")
	if impu == "" {
		writeError(w, http.StatusBadRequest, "missing impu parameter")
		return
	}
	info, err := a.store.RegistrationStatus(r.Context(), r.PathValue("impi"), impu, hss.AuthType(strings.ToUpper(q.Get("auth-type"))))
	if err != nil {
		fail(w, r, a.log, err)
		return
	}
	writeJSON(w, http.StatusOK, serverBody(info))
}

func (a *api) location(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	info, err := a.store.Location(r.Context(), r.PathValue("impu"), q.Get("originating") == "true", hss.AuthType(strings.ToUpper(q.Get("auth-type"))))
	if err != nil {
		fail(w, r, a.log, err)
		return
	}
	writeJSON(w, http.StatusOK, serverBody(info))
}

func (a *api) getRegData(w http.ResponseWriter, r *http.Request) {
	rd, err := a.store.RegData(r.Context(), r.PathValue("impu"))
	if err != nil {
		fail(w, r, a.log, err)
		return
	}
	writeXML(w, http.StatusOK, []byte(rd.XML()))
}

// regDataBody is the PUT /impu/<impu>/reg-data body.
type regDataBody struct {
	ReqType    string `json:"reqtype"`
	ServerName string `json:"server_name,omitempty"`
	// WildcardIdentity is what Sprout believes the wildcard is; the stored
	// data decides here.
	WildcardIdentity string `json:"wildcard_identity,omitempty"`
}

func (a *api) putRegData(w http.ResponseWriter, r *http.Request) {
	raw, err := readBody(w, r, maxBody)
	if err != nil {
		fail(w, r, a.log, err)
		return
	}
	var body regDataBody
	if err := decodeJSON(raw, &body); err != nil {
		fail(w, r, a.log, err)
		return
	}
	if body.ReqType == "" {
		writeError(w, http.StatusBadRequest, "missing reqtype")
		return
	}
	t, err := hss.ParseReqType(body.ReqType)
	if err != nil {
		fail(w, r, a.log, err)
		return
	}
	q := r.URL.Query()
	server := body.ServerName
	if server == "" {
		server = q.Get("server_name")
	}
	rd, err := a.store.UpdateRegData(r.Context(), r.PathValue("impu"), hss.RegRequest{
		Type: t, ServerName: server, PrivateID: q.Get("private_id"),
	})
	if err != nil {
		fail(w, r, a.log, err)
		return
	}
	writeXML(w, http.StatusOK, []byte(rd.XML()))
}
