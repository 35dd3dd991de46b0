package registrar

import (
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"strconv"
	"strings"

	"stillwater/diameter/hss"
	"stillwater/timerwheel"
)

// ManagementHandler serves Sprout's management API (port 9886):
//
//	GET    /impu/<impu>/bindings       the set's bindings
//	GET    /impu/<impu>/subscriptions  its reg-event subscriptions
//	DELETE /impu/<impu>                administrative de-registration
//
// The JSON shapes are Sprout's (docs/ManagementHttpAPI.md): objects keyed by
// binding id and by subscription tag; expires is Unix seconds.
func (r *Registrar) ManagementHandler() http.Handler { return mgmtAPI{r} }

type mgmtAPI struct{ r *Registrar }

type bindingJSON struct {
	URI          string            `json:"uri"`
	CallID       string            `json:"cid"`
	CSeq         uint32            `json:"cseq"`
	Expires      int64             `json:"expires"`
	Priority     int               `json:"priority"`
	Params       map[string]string `json:"params"`
	Paths        []string          `json:"paths"`
	TimerID      string            `json:"timer_id"`
	PrivateID    string            `json:"private_id"`
	EmergencyReg bool              `json:"emergency_reg"`
}

type subscriptionJSON struct {
	ReqURI  string   `json:"req_uri"`
	FromURI string   `json:"from_uri"`
	FromTag string   `json:"from_tag"`
	ToURI   string   `json:"to_uri"`
	ToTag   string   `json:"to_tag"`
	CallID  string   `json:"cid"`
	Routes  []string `json:"routes"`
	Expires int64    `json:"expires"`
	TimerID string   `json:"timer_id"`
}

func (a mgmtAPI) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	rest, ok := strings.CutPrefix(req.URL.Path, "/impu/")
	if !ok || rest == "" {
		http.Error(w, "not found: want /impu/<public id>[/bindings|/subscriptions]", http.StatusNotFound)
		return
	}
	impu, what := rest, ""
	if i := strings.LastIndexByte(rest, '/'); i >= 0 {
		impu, what = rest[:i], rest[i+1:]
	}
	switch what {
	case "":
		if req.Method != http.MethodDelete {
			w.Header().Set("Allow", http.MethodDelete)
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		a.deregister(w, req, impu)
	case "bindings", "subscriptions":
		if req.Method != http.MethodGet {
			w.Header().Set("Allow", http.MethodGet)
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		a.get(w, req, impu, what)
	default:
		http.Error(w, "not found: unknown resource "+strconv.Quote(what), http.StatusNotFound)
	}
}

func (a mgmtAPI) deregister(w http.ResponseWriter, req *http.Request, impu string) {
	err := a.r.Deregister(req.Context(), impu)
	switch {
	case errors.Is(err, ErrNotFound):
		http.Error(w, err.Error(), http.StatusNotFound)
	case err != nil:
		a.r.log.Error("administrative de-registration failed", "impu", impu, "err", err)
		http.Error(w, "de-registration failed", http.StatusBadGateway)
	default:
		w.WriteHeader(http.StatusOK)
	}
}

func (a mgmtAPI) get(w http.ResponseWriter, req *http.Request, impu, what string) {
	ctx := req.Context()
	t, err := a.r.resolve(ctx, impu)
	if errors.Is(err, hss.ErrNotFound) {
		http.Error(w, "no such subscriber "+impu, http.StatusNotFound)
		return
	}
	if err != nil {
		a.r.log.Error("management lookup failed", "impu", impu, "err", err)
		http.Error(w, "cannot look up the subscriber", http.StatusInternalServerError)
		return
	}
	rec, err := a.r.read(ctx, t.key)
	if err != nil {
		a.r.log.Error("management read failed", "impu", impu, "err", err)
		http.Error(w, "cannot read the registration store", http.StatusInternalServerError)
		return
	}
	if rec == nil {
		http.Error(w, "no registration data for "+impu, http.StatusNotFound)
		return
	}
	now := a.r.nowMs()
	id, err := a.r.timerID(t.key)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	timer := timerwheel.FormatID(id, 2)
	var body any
	if what == "bindings" {
		out := map[string]bindingJSON{}
		for _, b := range rec.Bindings {
			if b.Expires <= now {
				continue
			}
			pb := b.public(impu)
			bj := bindingJSON{
				URI: b.URI, CallID: b.CallID, CSeq: b.CSeq, Expires: b.Expires / 1000,
				Priority: int(math.Round(pb.Q * 1000)), Params: map[string]string{},
				Paths: append([]string{}, b.Path...), TimerID: timer, PrivateID: b.PrivateID,
				EmergencyReg: b.Emergency,
			}
			for _, p := range b.Params {
				bj.Params[p.K] = p.V
			}
			out[b.ID] = bj
		}
		body = map[string]any{"bindings": out}
	} else {
		out := map[string]subscriptionJSON{}
		for _, s := range rec.Subs {
			if s.Expires <= now {
				continue
			}
			out[s.ID] = subscriptionJSON{
				ReqURI: s.Target, FromURI: "<" + s.RemoteURI + ">", FromTag: s.RemoteTag,
				ToURI: "<" + s.LocalURI + ">", ToTag: s.ID, CallID: s.CallID,
				Routes: append([]string{}, s.Routes...), Expires: s.Expires / 1000, TimerID: timer,
			}
		}
		body = map[string]any{"subscriptions": out}
	}
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(body); err != nil {
		a.r.log.Warn("cannot write management response", "err", err)
	}
}
