package registrar

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"

	"stillwater/diameter/hss"
	"stillwater/kv"
)

// ErrNotFound means no live registration matches: an unknown or
// unregistered public identity, or a GRUU naming no registered instance.
var ErrNotFound = errors.New("registrar: not found")

// Param is a Contact header parameter as the UE sent it; Value keeps any
// quotes ("" for a flag such as +g.3gpp.smsip).
type Param struct {
	Name  string
	Value string
}

// Binding is one registered contact of a registration set.
type Binding struct {
	// ID identifies the binding within its set: the instance (with reg-id
	// under RFC 5626 outbound), else the Contact URI.
	ID string
	// AoR is the public identity the binding was looked up through; GRUU
	// is built on it.
	AoR string
	// URI is the Contact URI.
	URI         string
	DisplayName string
	// Params are the Contact header parameters but expires, in order
	// (feature tags for RFC 3841 callee preferences among them).
	Params []Param
	// Q is the q parameter, 1 when absent.
	Q         float64
	Expires   time.Time
	CallID    string
	CSeq      uint32
	Instance  string // "<urn:...>", "" if none
	RegID     int    // 0 if none
	Path      []string
	PrivateID string
	Emergency bool
}

// GRUU returns the binding's public GRUU (RFC 5627): the AoR with a gr
// parameter carrying the instance; "" without an instance or for a non-SIP
// AoR.
func (b *Binding) GRUU() string { return pubGRUU(b.AoR, b.Instance) }

// Param returns the value of a Contact parameter.
func (b *Binding) Param(name string) (string, bool) {
	for _, p := range b.Params {
		if equalFold(p.Name, name) {
			return p.Value, true
		}
	}
	return "", false
}

func pubGRUU(aor, instance string) string {
	if instance == "" || !(strings.HasPrefix(aor, "sip:") || strings.HasPrefix(aor, "sips:")) {
		return ""
	}
	return aor + ";gr=" + grValue(instance)
}

func (b *bindingRec) public(aor string) Binding {
	out := Binding{
		ID: b.ID, AoR: aor, URI: b.URI, DisplayName: b.Display, Q: 1,
		Expires: time.UnixMilli(b.Expires), CallID: b.CallID, CSeq: b.CSeq,
		Instance: b.Instance, RegID: b.RegID, Path: append([]string(nil), b.Path...),
		PrivateID: b.PrivateID, Emergency: b.Emergency,
	}
	for _, p := range b.Params {
		out.Params = append(out.Params, Param{Name: p.K, Value: p.V})
		if equalFold(p.K, "q") {
			if q, err := strconv.ParseFloat(p.V, 64); err == nil {
				out.Q = q
			}
		}
	}
	return out
}

// Lookup returns the live bindings of impu's registration set, for
// terminating routing. An identity with none is ErrNotFound.
func (r *Registrar) Lookup(ctx context.Context, impu string) ([]Binding, error) {
	t, err := r.resolve(ctx, impu)
	if errors.Is(err, hss.ErrNotFound) {
		return nil, fmt.Errorf("%w: %s is not provisioned", ErrNotFound, impu)
	}
	if err != nil {
		return nil, fmt.Errorf("registrar: look up %s: %w", impu, err)
	}
	rec, err := r.read(ctx, t.key)
	if err != nil {
		return nil, err
	}
	now := r.nowMs()
	var out []Binding
	if rec != nil {
		for i := range rec.Bindings {
			if rec.Bindings[i].Expires > now {
				out = append(out, rec.Bindings[i].public(impu))
			}
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: %s has no bindings", ErrNotFound, impu)
	}
	return out, nil
}

// LookupGRUU returns the live binding a public GRUU names; ErrNotFound if
// none does.
func (r *Registrar) LookupGRUU(ctx context.Context, gruu string) (*Binding, error) {
	var u sip.Uri
	if err := sip.ParseUri(stripAngle(gruu), &u); err != nil {
		return nil, fmt.Errorf("%w: %q is not a SIP URI: %v", ErrNotFound, gruu, err)
	}
	gr, ok := u.UriParams.Get("gr")
	if !ok || gr == "" {
		return nil, fmt.Errorf("%w: %q has no gr parameter", ErrNotFound, gruu)
	}
	instance := "<" + unescape(gr) + ">"
	impu := aorOf(&u)
	bs, err := r.Lookup(ctx, impu)
	if err != nil {
		return nil, err
	}
	for i := range bs {
		if bs[i].Instance == instance {
			return &bs[i], nil
		}
	}
	return nil, fmt.Errorf("%w: no binding of %s has instance %s", ErrNotFound, impu, instance)
}

// read returns the record of key, nil if there is none.
func (r *Registrar) read(ctx context.Context, key string) (*aorRecord, error) {
	rec, _, err := r.aors.Get(ctx, key)
	if errors.Is(err, kv.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("registrar: read %s: %w", key, err)
	}
	return &rec, nil
}
