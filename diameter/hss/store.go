package hss

import (
	"context"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"regexp"
	"slices"
	"sync"
	"time"

	"stillwater/kv"
)

// SimservsWriter stores the default MMTEL settings document (Homer's
// simservs) for new public identities. Bulk provisioning calls it after a
// batch's IMPIs and IRSs are written and before the public identities become
// visible, so that every provisioned subscriber has its document. It must be
// idempotent: a re-run import calls it again for subscribers whose
// provisioning was interrupted.
type SimservsWriter interface {
	PutDefault(ctx context.Context, impus []string) error
}

// Options configure a Store.
type Options struct {
	// HomeDomain is the default realm of private identities provisioned
	// without one (Clearwater's home_domain).
	HomeDomain string
	// SCSCF is the S-CSCF name assigned when a request names none
	// (Clearwater's scscf_uri), and the one the I-CSCF is pointed at for
	// subscribers without an assigned S-CSCF.
	SCSCF string
	// DefaultIFC returns the iFC document of subscribers provisioned in bulk
	// without one. Nil means DefaultIFC("sip:mmtel." + domain).
	DefaultIFC func(domain string) string
	// Simservs, if set, writes the simservs documents of bulk-provisioned
	// subscribers.
	Simservs SimservsWriter
	// ShardOf, if set, maps a kv key to its shard (consensus.Node.ShardOf) so
	// that bulk writes reach all shards at once; without it they are spread
	// by chunks.
	ShardOf func(key string) int
	// Rand is the source of AKA challenges and IRS/service profile ids;
	// nil means crypto/rand.
	Rand io.Reader
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// Store is the subscriber data of the site. Its methods are safe for
// concurrent use.
type Store struct {
	kv    *kv.Service
	opts  Options
	log   *slog.Logger
	impis *kv.Table[impiRecord]
	irss  *kv.Table[irsRecord]
	impus *kv.Table[impuRecord]
	regs  *kv.Table[regRecord]
	wilds *kv.Table[[]string]

	// iFC documents are stored by content hash and never change, so they
	// can be cached without invalidation.
	ifcMu    sync.Mutex
	ifcCache map[string]serviceProfileDoc

	reMu    sync.Mutex
	reCache map[string]*regexp.Regexp
}

// Table names; each is a kv key prefix.
const (
	tableIMPI = "hss.impi"
	tableIRS  = "hss.irs"
	tableIMPU = "hss.impu"
	tableReg  = "hss.reg"
	tableWild = "hss.wild"
	tableIFC  = "hss.ifc"
)

// cacheLimit bounds the in-memory caches; they are cleared when full.
const cacheLimit = 4096

// New returns the subscriber store kept in kvs.
func New(kvs *kv.Service, opts Options) *Store {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Rand == nil {
		opts.Rand = rand.Reader
	}
	if opts.DefaultIFC == nil {
		opts.DefaultIFC = func(domain string) string { return DefaultIFC("sip:mmtel." + domain) }
	}
	return &Store{
		kv:   kvs,
		opts: opts,
		log:  opts.Logger.With("component", "hss"),
		// Every registration and call reads these; decoding them cost
		// more than reading them.
		impis:    kv.NewTable[impiRecord](kvs, tableIMPI, nil).WithCache(cacheBytes, impiRecord.clone),
		irss:     kv.NewTable[irsRecord](kvs, tableIRS, nil).WithCache(cacheBytes, irsRecord.clone),
		impus:    kv.NewTable[impuRecord](kvs, tableIMPU, nil).WithCache(2*cacheBytes, func(r impuRecord) impuRecord { return r }),
		regs:     kv.NewTable[regRecord](kvs, tableReg, nil).WithCache(cacheBytes, regRecord.clone),
		wilds:    kv.NewTable[[]string](kvs, tableWild, nil),
		ifcCache: map[string]serviceProfileDoc{},
		reCache:  map[string]*regexp.Regexp{},
	}
}

// cacheBytes bounds each hot table's cache of decoded records.
const cacheBytes = 16 << 20

// impiRecord is a private identity (hss.impi/<impi>).
type impiRecord struct {
	Realm    string     `json:"realm"`
	HA1      string     `json:"ha1,omitempty"`
	Password string     `json:"password,omitempty"`
	AKA      *akaRecord `json:"aka,omitempty"`
	// IRS is a hint: every IRS that lists this IMPI is here, and maybe more.
	IRS []string `json:"irs,omitempty"`
}

func (r impiRecord) clone() impiRecord {
	if r.AKA != nil {
		a := *r.AKA
		a.K, a.OPc = slices.Clone(a.K), slices.Clone(a.OPc)
		r.AKA = &a
	}
	r.IRS = slices.Clone(r.IRS)
	return r
}

type akaRecord struct {
	K   []byte `json:"k"`
	OPc []byte `json:"opc"`
	AMF uint16 `json:"amf"`
	// SQN is the highest sequence number issued or accepted in a resync.
	SQN uint64 `json:"sqn"`
}

// irsRecord is an implicit registration set (hss.irs/<id>).
type irsRecord struct {
	Profiles []profileRecord `json:"sp,omitempty"`
	// Publics is a hint: every IMPU whose index names this IRS is here.
	Publics []string `json:"pub,omitempty"`
	// Privates is authoritative: the IMPIs that may authenticate the set.
	Privates []string `json:"priv,omitempty"`
}

type profileRecord struct {
	ID string `json:"id"`
	// IFC is the content hash of the iFC document (hss.ifc/<hash>), "" if
	// none was provisioned.
	IFC string `json:"ifc,omitempty"`
}

func (r irsRecord) clone() irsRecord {
	return irsRecord{Profiles: slices.Clone(r.Profiles), Publics: slices.Clone(r.Publics), Privates: slices.Clone(r.Privates)}
}

func (r *irsRecord) profile(id string) *profileRecord {
	for i := range r.Profiles {
		if r.Profiles[i].ID == id {
			return &r.Profiles[i]
		}
	}
	return nil
}

// impuRecord is the authoritative record of a public identity
// (hss.impu/<impu>).
type impuRecord struct {
	IRS    string `json:"irs"`
	SP     string `json:"sp"`
	XML    string `json:"xml"`
	Barred bool   `json:"barred,omitempty"`
}

// regRecord is the registration state of an IRS (hss.reg/<irs>).
type regRecord struct {
	State RegState `json:"state"`
	SCSCF string   `json:"scscf,omitempty"`
	// IMPIs are the private identities that registered the set.
	IMPIs []string `json:"impis,omitempty"`
}

func (r regRecord) clone() regRecord {
	r.IMPIs = slices.Clone(r.IMPIs)
	return r
}

// errUnchanged tells update that fn left the record as it was.
var errUnchanged = errors.New("unchanged")

// maxAttempts bounds compare-and-set retries under contention.
const maxAttempts = 16

// update applies fn to the record under key (the zero value and exists
// false if there is none) and stores the result with compare-and-set,
// retrying on conflict. fn returns errUnchanged to skip the write.
func update[T any](ctx context.Context, t *kv.Table[T], key string, fn func(v *T, exists bool) error) (T, error) {
	for attempt := 1; ; attempt++ {
		v, ver, err := t.Get(ctx, key)
		exists := err == nil
		if err != nil && !errors.Is(err, kv.ErrNotFound) {
			return v, fmt.Errorf("read %s: %w", t.Key(key), err)
		}
		if err := fn(&v, exists); err != nil {
			if errors.Is(err, errUnchanged) {
				return v, nil
			}
			return v, err
		}
		_, err = t.CAS(ctx, key, v, 0, ver)
		if err == nil {
			return v, nil
		}
		if !errors.Is(err, kv.ErrConflict) || attempt >= maxAttempts {
			return v, fmt.Errorf("write %s: %w", t.Key(key), err)
		}
		if err := backoff(ctx, attempt); err != nil {
			return v, err
		}
	}
}

// remove deletes the record under key, retrying on conflict, unless check
// (given the current value) returns an error, which remove returns. It
// reports whether a record existed.
func remove[T any](ctx context.Context, t *kv.Table[T], key string, check func(v T) error) (bool, error) {
	for attempt := 1; ; attempt++ {
		v, ver, err := t.Get(ctx, key)
		if errors.Is(err, kv.ErrNotFound) {
			return false, nil
		}
		if err != nil {
			return false, fmt.Errorf("read %s: %w", t.Key(key), err)
		}
		if check != nil {
			if err := check(v); err != nil {
				return true, err
			}
		}
		err = t.DeleteIf(ctx, key, ver)
		if err == nil {
			return true, nil
		}
		if !errors.Is(err, kv.ErrConflict) || attempt >= maxAttempts {
			return true, fmt.Errorf("delete %s: %w", t.Key(key), err)
		}
		if err := backoff(ctx, attempt); err != nil {
			return true, err
		}
	}
}

func backoff(ctx context.Context, attempt int) error {
	t := time.NewTimer(time.Duration(attempt) * time.Millisecond)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// get reads a record, mapping absence to ErrNotFound with what in the
// message.
func get[T any](ctx context.Context, t *kv.Table[T], key, what string, opts ...kv.ReadOption) (T, error) {
	v, _, err := t.Get(ctx, key, opts...)
	if errors.Is(err, kv.ErrNotFound) {
		return v, notFound("%s %q", what, key)
	}
	if err != nil {
		return v, fmt.Errorf("hss: read %s %q: %w", what, key, err)
	}
	return v, nil
}

// newID returns a random (version 4) UUID.
func (s *Store) newID() (string, error) {
	var b [16]byte
	if _, err := io.ReadFull(s.opts.Rand, b[:]); err != nil {
		return "", fmt.Errorf("hss: random id: %w", err)
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return formatUUID(b), nil
}

// derivedID returns a name-based (version 5 style) UUID, so that bulk
// provisioning re-run after an interruption rewrites the same records.
func derivedID(kind, name string) string {
	h := sha1.Sum([]byte("stillwater.hss/" + kind + "/" + name))
	var b [16]byte
	copy(b[:], h[:16])
	b[6] = b[6]&0x0f | 0x50
	b[8] = b[8]&0x3f | 0x80
	return formatUUID(b)
}

func formatUUID(b [16]byte) string {
	var s [36]byte
	hex.Encode(s[0:8], b[0:4])
	s[8] = '-'
	hex.Encode(s[9:13], b[4:6])
	s[13] = '-'
	hex.Encode(s[14:18], b[6:8])
	s[18] = '-'
	hex.Encode(s[19:23], b[8:10])
	s[23] = '-'
	hex.Encode(s[24:], b[10:16])
	return string(s[:])
}

// ifcKey is the content hash under which an iFC document is stored.
func ifcKey(doc []byte) string {
	h := sha256.Sum256(doc)
	return hex.EncodeToString(h[:])
}

// putIFC checks and stores an iFC document and returns its hash. Storing
// an existing document again rewrites identical bytes, which is harmless.
func (s *Store) putIFC(ctx context.Context, doc []byte) (string, error) {
	parsed, err := parseServiceProfile(doc)
	if err != nil {
		return "", err
	}
	key := ifcKey(doc)
	if _, err := s.kv.Put(ctx, tableIFC+"/"+key, doc); err != nil {
		return "", fmt.Errorf("hss: store iFC document: %w", err)
	}
	s.cacheIFC(key, parsed)
	return key, nil
}

func (s *Store) cacheIFC(key string, doc serviceProfileDoc) {
	s.ifcMu.Lock()
	defer s.ifcMu.Unlock()
	if len(s.ifcCache) >= cacheLimit {
		clear(s.ifcCache)
	}
	s.ifcCache[key] = doc
}

// ifcKnown reports whether the iFC document with this hash is known to be
// stored.
func (s *Store) ifcKnown(key string) bool {
	s.ifcMu.Lock()
	defer s.ifcMu.Unlock()
	_, ok := s.ifcCache[key]
	return ok
}

// ifcDoc returns the stored iFC document with its hash, raw and parsed.
func (s *Store) ifcDoc(ctx context.Context, key string) (serviceProfileDoc, error) {
	s.ifcMu.Lock()
	doc, ok := s.ifcCache[key]
	s.ifcMu.Unlock()
	if ok {
		return doc, nil
	}
	raw, err := s.ifcRaw(ctx, key)
	if err != nil {
		return doc, err
	}
	doc, err = parseServiceProfile(raw)
	if err != nil {
		return doc, fmt.Errorf("hss: stored iFC document %s: %w", key, err)
	}
	s.cacheIFC(key, doc)
	return doc, nil
}

func (s *Store) ifcRaw(ctx context.Context, key string) ([]byte, error) {
	// A document's key is its hash, so a cached copy is never wrong.
	rec, err := s.kv.Get(ctx, tableIFC+"/"+key, kv.Cached())
	if errors.Is(err, kv.ErrNotFound) {
		return nil, notFound("iFC document %s", key)
	}
	if err != nil {
		return nil, fmt.Errorf("hss: read iFC document: %w", err)
	}
	return rec.Value, nil
}

// wildcardRE compiles (and caches) a wildcard identity's pattern.
func (s *Store) wildcardRE(pattern string) (*regexp.Regexp, error) {
	s.reMu.Lock()
	re, ok := s.reCache[pattern]
	s.reMu.Unlock()
	if ok {
		return re, nil
	}
	re, err := wildcardRegexp(pattern)
	if err != nil {
		return nil, err
	}
	s.reMu.Lock()
	if len(s.reCache) >= cacheLimit {
		clear(s.reCache)
	}
	s.reCache[pattern] = re
	s.reMu.Unlock()
	return re, nil
}

// parallel runs fn for i in [0, n) with at most limit at once and returns
// the first error. Two or fewer run in turn: most reads here come from the
// record cache, and starting goroutines for them cost more than they save.
func parallel(ctx context.Context, n, limit int, fn func(ctx context.Context, i int) error) error {
	if n <= 2 {
		for i := range n {
			if err := fn(ctx, i); err != nil {
				return err
			}
		}
		return nil
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg      sync.WaitGroup
		errOnce sync.Once
		first   error
	)
	sem := make(chan struct{}, max(1, limit))
	for i := range n {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		run := func() {
			defer func() { <-sem }()
			if err := fn(ctx, i); err != nil {
				errOnce.Do(func() { first = err; cancel() })
			}
		}
		if i == n-1 {
			run() // the caller would only wait: it takes the last one itself
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			run()
		}()
	}
	wg.Wait()
	if first == nil && ctx.Err() != nil {
		return ctx.Err()
	}
	return first
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func without(list []string, s string) []string {
	out := list[:0]
	for _, v := range list {
		if v != s {
			out = append(out, v)
		}
	}
	return out
}
