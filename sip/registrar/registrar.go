package registrar

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"

	"stillwater/diameter/hss"
	"stillwater/kv"
	"stillwater/sip/auth"
	"stillwater/timerwheel"
)

// TimerType is the timerwheel callback type of registration expiry timers.
const TimerType = "reg-expiry"

// Table is the kv table holding one record per registration set.
const Table = "scscf.aor"

// Defaults for Options left zero.
const (
	DefaultMaxExpires    = 300 * time.Second  // Clearwater's reg_max_expires
	DefaultSubMaxExpires = 3600 * time.Second // RFC 3680 suggests 3761 s; Sprout caps at an hour
)

// Sender sends an in-dialog request (a NOTIFY) and returns its final
// response. The core routes it by its Request-URI and Route headers.
type Sender interface {
	Send(ctx context.Context, req *sip.Request) (*sip.Response, error)
}

// Clock is the registrar's time source; timerwheel.FakeClock satisfies it.
type Clock interface {
	Now() time.Time
}

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

// Options configure a Registrar.
type Options struct {
	KV     *kv.Service
	Timers *timerwheel.Service
	HSS    *hss.Store
	// MaxExpires caps a binding's lifetime (reg_max_expires); default 300 s.
	MaxExpires time.Duration
	// SubMaxExpires caps a reg-event subscription (sub_max_expires);
	// default one hour.
	SubMaxExpires time.Duration
	// ServiceRoute is the URI put in Service-Route of REGISTER responses,
	// e.g. "sip:scscf.example.com:5054;lr;orig"; empty means none.
	ServiceRoute string
	// SCSCFName is this S-CSCF's name as the HSS records it (scscf_uri).
	SCSCFName string
	// Contact is the URI of this S-CSCF put in the Contact of SUBSCRIBE
	// responses and NOTIFYs; default SCSCFName.
	Contact string
	Clock   Clock
	// Rand is the source of dialog tags; default crypto/rand.
	Rand   io.Reader
	Logger *slog.Logger
	Sender Sender
}

// Registrar is the S-CSCF registrar. Its methods are safe for concurrent use.
type Registrar struct {
	opts   Options
	aors   *kv.Table[aorRecord]
	timers *timerwheel.Service
	hss    *hss.Store
	clock  Clock
	log    *slog.Logger

	randMu sync.Mutex
	rand   io.Reader

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// New returns a registrar and registers its expiry timer handler with
// opts.Timers. Close stops its background NOTIFY sending.
func New(opts Options) *Registrar {
	if opts.MaxExpires <= 0 {
		opts.MaxExpires = DefaultMaxExpires
	}
	if opts.SubMaxExpires <= 0 {
		opts.SubMaxExpires = DefaultSubMaxExpires
	}
	if opts.Contact == "" {
		opts.Contact = opts.SCSCFName
	}
	if opts.Clock == nil {
		opts.Clock = systemClock{}
	}
	if opts.Rand == nil {
		opts.Rand = rand.Reader
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &Registrar{
		opts: opts,
		// Every registration reads its record twice and most calls once;
		// a cache of decoded records spares the JSON decoding.
		aors:   kv.NewTable[aorRecord](opts.KV, Table, nil).WithCache(32<<20, aorRecord.clone),
		timers: opts.Timers,
		hss:    opts.HSS,
		clock:  opts.Clock,
		log:    opts.Logger.With("component", "registrar"),
		rand:   opts.Rand,
		ctx:    ctx,
		cancel: cancel,
	}
	opts.Timers.Register(TimerType, r.onTimer)
	return r
}

// Close abandons NOTIFYs in flight and waits for their goroutines.
func (r *Registrar) Close() {
	r.cancel()
	r.wg.Wait()
}

// aorRecord is a registration set's bindings and reg-event subscriptions.
type aorRecord struct {
	// AoR is the default public identity the record is keyed by.
	AoR string `json:"aor"`
	// IMPUs are the set's unbarred public identities, default first, as of
	// the last REGISTER: the registration elements of reginfo documents.
	IMPUs    []string     `json:"impus,omitempty"`
	Bindings []bindingRec `json:"bindings,omitempty"`
	Subs     []subRec     `json:"subs,omitempty"`
	// Used are the single-use nonces consumed by REGISTERs that wrote this
	// record, kept until their challenges expire: consuming a nonce in the
	// registering write spares the challenge store a second write.
	Used []usedNonce `json:"used,omitempty"`
}

type usedNonce struct {
	Key     string `json:"k"`
	Expires int64  `json:"e"` // Unix ms
}

// remembers reports whether the record holds a nonce still in use at now,
// and so must be kept although it may have no bindings.
func (a *aorRecord) remembers(now int64) bool {
	return slices.ContainsFunc(a.Used, func(u usedNonce) bool { return u.Expires > now })
}

// consume records nonce as used, or returns auth.ErrNonceUsed if it is.
func (a *aorRecord) consume(nonce *auth.Nonce) error {
	if slices.ContainsFunc(a.Used, func(u usedNonce) bool { return u.Key == nonce.Key }) {
		return auth.ErrNonceUsed
	}
	a.Used = append(a.Used, usedNonce{Key: nonce.Key, Expires: nonce.Expires})
	return nil
}

type param struct {
	K string `json:"k"`
	V string `json:"v,omitempty"`
}

type bindingRec struct {
	ID        string   `json:"id"`
	URI       string   `json:"uri"`
	Display   string   `json:"dn,omitempty"`
	Params    []param  `json:"params,omitempty"` // Contact header params but expires
	CallID    string   `json:"cid"`
	CSeq      uint32   `json:"cseq"`
	Expires   int64    `json:"exp"`   // Unix ms
	Since     int64    `json:"since"` // Unix ms of the first registration
	Instance  string   `json:"inst,omitempty"`
	RegID     int      `json:"regid,omitempty"`
	Path      []string `json:"path,omitempty"`
	PrivateID string   `json:"impi,omitempty"`
	Emergency bool     `json:"sos,omitempty"`
}

type subRec struct {
	// ID is our dialog tag.
	ID         string   `json:"id"`
	IMPU       string   `json:"impu"`
	CallID     string   `json:"cid"`
	RemoteTag  string   `json:"rtag"`
	RemoteURI  string   `json:"ruri"` // the subscriber's From, without tag
	LocalURI   string   `json:"luri"` // the SUBSCRIBE's To, without tag
	Target     string   `json:"target"`
	Routes     []string `json:"routes,omitempty"`
	RemoteCSeq uint32   `json:"rcseq"`
	CSeq       uint32   `json:"cseq"`    // next local CSeq
	Version    int      `json:"version"` // next reginfo version
	Expires    int64    `json:"exp"`     // Unix ms
	EventID    string   `json:"evid,omitempty"`
}

func (b *bindingRec) param(k string) (string, bool) {
	for _, p := range b.Params {
		if equalFold(p.K, k) {
			return p.V, true
		}
	}
	return "", false
}

// nextExpiry is the earliest expiry in the record (Unix ms), 0 if none.
func (a *aorRecord) nextExpiry() int64 {
	var next int64
	for _, b := range a.Bindings {
		if next == 0 || b.Expires < next {
			next = b.Expires
		}
	}
	for _, s := range a.Subs {
		if next == 0 || s.Expires < next {
			next = s.Expires
		}
	}
	return next
}

func (a *aorRecord) empty() bool { return len(a.Bindings) == 0 && len(a.Subs) == 0 }

// clone copies everything, down to each binding's and subscription's
// slices: the record cache and its readers must share nothing mutable.
func (a aorRecord) clone() aorRecord {
	a.IMPUs = slices.Clone(a.IMPUs)
	a.Bindings = slices.Clone(a.Bindings)
	a.Subs = slices.Clone(a.Subs)
	a.Used = slices.Clone(a.Used)
	for i := range a.Bindings {
		b := &a.Bindings[i]
		b.Params, b.Path = slices.Clone(b.Params), slices.Clone(b.Path)
	}
	for i := range a.Subs {
		a.Subs[i].Routes = slices.Clone(a.Subs[i].Routes)
	}
	return a
}

// maxAttempts bounds compare-and-set retries on one record.
const maxAttempts = 64

// errAbort wraps an error returned by an update function, which ends the
// update without writing.
type abortError struct{ err error }

func (e abortError) Error() string { return e.err.Error() }
func (e abortError) Unwrap() error { return e.err }

// update runs fn on a copy of the current record of key (a fresh one if
// absent) and writes what it leaves, compare-and-set, retrying on conflict.
// An empty record is deleted. fn may run several times. It returns the
// record as stored (nil if it has no bindings or subscriptions). A record
// left with neither but with nonces in use is kept for them.
//
// The record's expiry timer is set (or deleted) in the same replicated
// write, so the timer always matches the record that was stored last,
// whoever wrote it, and a registration costs one write.
func (r *Registrar) update(ctx context.Context, key string, fn func(rec *aorRecord, exists bool) error) (*aorRecord, error) {
	for attempt := 1; ; attempt++ {
		now := r.nowMs()
		// The first attempt reads this node's cached copy, which the
		// compare-and-set below checks: a stale copy (this node does not
		// lead the shard and lags) costs a retry, which reads through.
		var opts []kv.ReadOption
		if attempt == 1 {
			opts = append(opts, kv.Cached())
		}
		cur, ver, err := r.aors.Get(ctx, key, opts...)
		exists := err == nil
		if err != nil && !errors.Is(err, kv.ErrNotFound) {
			return nil, fmt.Errorf("registrar: read %s: %w", key, err)
		}
		if !exists {
			cur = aorRecord{AoR: key}
		}
		rec := &cur // Get returns a copy of its own
		rec.Used = slices.DeleteFunc(rec.Used, func(u usedNonce) bool { return u.Expires <= now })
		if err := fn(rec, exists); err != nil {
			return nil, abortError{err}
		}
		gone := rec.empty() && !rec.remembers(now)
		if gone && !exists {
			return nil, nil
		}
		timer, err := r.timerChange(key, rec, now)
		if err != nil {
			return nil, err
		}
		also := kv.Rider{Shard: timer.Shard, Command: timer.Command}
		var res []byte
		if gone {
			res, err = r.aors.DeleteIfWith(ctx, key, ver, also)
		} else {
			_, res, err = r.aors.CASWith(ctx, key, *rec, r.backstop(rec), ver, also)
		}
		if err == nil {
			if err := r.timers.Applied(timer, res); err != nil {
				// The record is stored; its kv TTL collects it if it
				// outlives its bindings for want of a timer.
				r.log.Error("registration expiry timer not armed", "aor", key, "err", err)
			}
			if rec.empty() {
				return nil, nil
			}
			return rec, nil
		}
		if !errors.Is(err, kv.ErrConflict) || attempt >= maxAttempts {
			return nil, fmt.Errorf("registrar: write %s: %w", key, err)
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
	}
}

// backstop is the record's kv TTL: well after its last expiry, so a record
// whose timer was somehow lost does not stay for ever. Expiry proper is the
// timer's job.
func (r *Registrar) backstop(rec *aorRecord) time.Duration {
	var last int64
	for _, b := range rec.Bindings {
		last = max(last, b.Expires)
	}
	for _, s := range rec.Subs {
		last = max(last, s.Expires)
	}
	for _, u := range rec.Used {
		last = max(last, u.Expires)
	}
	d := time.Duration(last-r.nowMs())*time.Millisecond + time.Hour
	return max(d, time.Hour)
}

func (r *Registrar) nowMs() int64 { return r.clock.Now().UnixMilli() }

// timerID is the expiry timer of a record: derived from its key, so every
// node finds the same timer without storing its id, and on the record's
// shard, so the two change in one write.
func (r *Registrar) timerID(key string) (timerwheel.ID, error) {
	id, err := r.timers.IDOn(Table+"/"+key, r.aors.Shard(key))
	if err != nil {
		return 0, fmt.Errorf("registrar: expiry timer of %s: %w", key, err)
	}
	return id, nil
}

// timerChange points the record's timer at its earliest expiry, or deletes
// it when nothing in the record expires.
func (r *Registrar) timerChange(key string, rec *aorRecord, now int64) (timerwheel.Change, error) {
	id, err := r.timerID(key)
	if err != nil {
		return timerwheel.Change{}, err
	}
	if rec.empty() {
		return r.timers.DeleteChange(id), nil
	}
	d := max(time.Duration(rec.nextExpiry()-now)*time.Millisecond, time.Millisecond)
	var tags []timerwheel.Tag
	if n := len(rec.Bindings); n > 0 {
		tags = append(tags, timerwheel.Tag{Type: "registrations", Count: 1}, timerwheel.Tag{Type: "bindings", Count: uint32(n)})
	}
	if n := len(rec.Subs); n > 0 {
		tags = append(tags, timerwheel.Tag{Type: "subscriptions", Count: uint32(n)})
	}
	c, err := r.timers.SetChange(timerwheel.Timer{
		ID:       id,
		Interval: d,
		Callback: timerwheel.Callback{Type: TimerType, Opaque: []byte(key)},
		Tags:     tags,
	})
	if err != nil {
		return timerwheel.Change{}, fmt.Errorf("registrar: expiry timer of %s: %w", key, err)
	}
	return c, nil
}

// newTag returns a fresh dialog tag.
func (r *Registrar) newTag() string {
	var b [8]byte
	r.randMu.Lock()
	_, err := io.ReadFull(r.rand, b[:])
	r.randMu.Unlock()
	if err != nil {
		// crypto/rand does not fail; a broken injected source still yields a tag.
		return fmt.Sprintf("%x", r.clock.Now().UnixNano())
	}
	return hex.EncodeToString(b[:])
}

// target is a registration set as the HSS describes it.
type target struct {
	key      string // the record key: the default public identity
	impu     string // the identity asked about
	barred   bool
	irs      string
	impus    []string // unbarred, non-wildcard identities, default first
	state    hss.RegState
	scscf    string
	regIMPIs []string
}

// resolve asks the HSS for impu's registration set.
func (r *Registrar) resolve(ctx context.Context, impu string) (*target, error) {
	rd, err := r.hss.RegData(ctx, impu)
	if err != nil {
		return nil, err
	}
	return targetOf(impu, rd), nil
}

// targetOf is impu's registration set as rd describes it.
func targetOf(impu string, rd *hss.RegData) *target {
	t := &target{impu: impu, irs: rd.IRS, state: rd.State, scscf: rd.SCSCF, regIMPIs: rd.RegisteredIMPIs}
	for _, p := range rd.PublicIDs() {
		if p.Identity == impu || (rd.Wildcard != "" && p.Identity == rd.Wildcard) {
			t.barred = p.Barred
		}
		if p.Wildcard() {
			continue
		}
		if t.key == "" {
			t.key = p.Identity
		}
		if !p.Barred {
			t.impus = append(t.impus, p.Identity)
		}
	}
	if rd.Wildcard != "" || t.key == "" {
		// Identities matched through a wildcard each register on their own.
		t.key = impu
		if !t.barred && !contains(t.impus, impu) {
			t.impus = append([]string{impu}, t.impus...)
		}
	}
	return t
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
