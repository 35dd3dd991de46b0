package homer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"stillwater/kv"
)

// keyPrefix is the kv table holding the documents, keyed by IMPU.
const keyPrefix = "simservs/"

// casAttempts bounds how often an unconditional write retries after losing
// a compare-and-set race. Each loss means another writer succeeded, so
// running out takes a storm of writes to one identity.
const casAttempts = 8

// Errors callers act on; match them with errors.Is. Invalid documents give
// a *ValidationError (errors.Is(err, ErrInvalid)).
var (
	// ErrNotFound means the identity has no document.
	ErrNotFound = errors.New("no simservs document")
	// ErrPreconditionFailed means a Cond did not hold.
	ErrPreconditionFailed = errors.New("precondition failed")
	// ErrBadIdentity means the IMPU is not a sip, sips or tel URI.
	ErrBadIdentity = errors.New("not a sip, sips or tel URI")
	// ErrUnknownIdentity means Options.KnownIdentity does not know the IMPU.
	ErrUnknownIdentity = errors.New("identity is not provisioned")
)

// Options configure a Store.
type Options struct {
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// KnownIdentity, if set, says whether an IMPU is provisioned; Put and
	// PutIf refuse documents for identities it does not know. nil accepts
	// every identity, as Clearwater's Homer did.
	KnownIdentity func(ctx context.Context, impu string) (bool, error)
	// RequestTimeout bounds the storage work of one XCAP request (default 10 s).
	RequestTimeout time.Duration
}

// Store keeps each identity's simservs document in kv. Its methods are safe
// for concurrent use.
type Store struct {
	kv      *kv.Service
	log     *slog.Logger
	known   func(ctx context.Context, impu string) (bool, error)
	timeout time.Duration
}

// New returns the store over s.
func New(s *kv.Service, opts Options) *Store {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.RequestTimeout <= 0 {
		opts.RequestTimeout = 10 * time.Second
	}
	return &Store{
		kv:      s,
		log:     opts.Logger.With("component", "homer"),
		known:   opts.KnownIdentity,
		timeout: opts.RequestTimeout,
	}
}

// Document is a stored document.
type Document struct {
	XML []byte
	// Version identifies this write of the document; it is the XCAP entity tag.
	Version kv.Version
}

// PutResult says what a write did.
type PutResult struct {
	Version kv.Version
	Created bool // there was no document before
}

// Cond is a precondition on the stored document, as XCAP's If-Match and
// If-None-Match headers express it. The zero Cond always holds.
type Cond struct {
	// Exists requires a document (If-Match: *).
	Exists bool
	// Absent requires no document (If-None-Match: *).
	Absent bool
	// Versions, when non-empty, requires a document with one of these
	// versions (If-Match with entity tags). Version 0 matches nothing.
	Versions []kv.Version
	// NotVersions refuses a document with any of these versions
	// (If-None-Match with entity tags).
	NotVersions []kv.Version
}

// holds reports whether c holds for a document at version cur (0: none).
func (c Cond) holds(cur kv.Version) bool {
	switch {
	case c.Exists && cur == 0,
		c.Absent && cur != 0,
		len(c.Versions) > 0 && (cur == 0 || !slices.Contains(c.Versions, cur)),
		cur != 0 && slices.Contains(c.NotVersions, cur):
		return false
	}
	return true
}

// key returns the kv key of impu's document.
func key(impu string) (string, error) {
	if err := checkIMPU(impu); err != nil {
		return "", err
	}
	return keyPrefix + impu, nil
}

// checkIMPU accepts sip, sips and tel URIs that fit in a kv key. Beyond the
// scheme it stays lenient: wildcarded IMPUs and odd user parts are the HSS's
// business, and the URI is only a name here.
func checkIMPU(impu string) error {
	if len(impu) > kv.MaxKeyLen-len(keyPrefix) {
		return fmt.Errorf("%w: %d bytes long", ErrBadIdentity, len(impu))
	}
	if !utf8.ValidString(impu) || strings.ContainsFunc(impu, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) {
		return fmt.Errorf("%w: %q contains spaces or control characters", ErrBadIdentity, clip(impu))
	}
	scheme, rest, _ := strings.Cut(impu, ":")
	switch strings.ToLower(scheme) {
	case "sip", "sips", "tel":
		if rest != "" {
			return nil
		}
	}
	return fmt.Errorf("%w: %q", ErrBadIdentity, clip(impu))
}

// Get returns impu's document, or ErrNotFound. Reads are linearizable
// unless kv.LocalRead() is given.
func (s *Store) Get(ctx context.Context, impu string, opts ...kv.ReadOption) (Document, error) {
	k, err := key(impu)
	if err != nil {
		return Document{}, fmt.Errorf("homer: get: %w", err)
	}
	rec, err := s.kv.Get(ctx, k, opts...)
	if errors.Is(err, kv.ErrNotFound) {
		return Document{}, fmt.Errorf("homer: get %s: %w", impu, ErrNotFound)
	}
	if err != nil {
		return Document{}, fmt.Errorf("homer: get %s: %w", impu, err)
	}
	if len(rec.Value) == 0 {
		// Bulk provisioning stores the default document by reference.
		return Document{XML: DefaultDocument(), Version: rec.Version}, nil
	}
	return Document{XML: rec.Value, Version: rec.Version}, nil
}

// Settings returns the typed view of impu's document, or ErrNotFound: what
// the MMTEL application server reads on each call.
func (s *Store) Settings(ctx context.Context, impu string, opts ...kv.ReadOption) (*Simservs, error) {
	doc, err := s.Get(ctx, impu, opts...)
	if err != nil {
		return nil, err
	}
	ss, err := Parse(doc.XML)
	if err != nil {
		// Only valid documents are stored; this one was written by
		// something else or by an older, laxer version.
		return nil, fmt.Errorf("homer: stored document of %s: %w", impu, err)
	}
	return ss, nil
}

// Put validates doc and stores it as impu's document, replacing any other.
func (s *Store) Put(ctx context.Context, impu string, doc []byte) (PutResult, error) {
	return s.PutIf(ctx, impu, doc, Cond{})
}

// PutIf is Put when c holds for the stored document; otherwise it returns
// ErrPreconditionFailed and changes nothing.
func (s *Store) PutIf(ctx context.Context, impu string, doc []byte, c Cond) (PutResult, error) {
	k, err := key(impu)
	if err != nil {
		return PutResult{}, fmt.Errorf("homer: put: %w", err)
	}
	if err := Validate(doc); err != nil {
		return PutResult{}, fmt.Errorf("homer: put %s: %w", impu, err)
	}
	if s.known != nil {
		ok, err := s.known(ctx, impu)
		if err != nil {
			return PutResult{}, fmt.Errorf("homer: put %s: look up identity: %w", impu, err)
		}
		if !ok {
			return PutResult{}, fmt.Errorf("homer: put %s: %w", impu, ErrUnknownIdentity)
		}
	}
	// A read then a compare-and-set tells creation from replacement (201
	// or 200) and applies c against the version actually replaced.
	cur, err := s.version(ctx, k)
	if err != nil {
		return PutResult{}, fmt.Errorf("homer: put %s: %w", impu, err)
	}
	for range casAttempts {
		if !c.holds(cur) {
			return PutResult{}, fmt.Errorf("homer: put %s: %w", impu, ErrPreconditionFailed)
		}
		v, err := s.kv.CompareAndSet(ctx, k, doc, 0, cur)
		if err == nil {
			return PutResult{Version: v, Created: cur == 0}, nil
		}
		var ce *kv.ConflictError
		if !errors.As(err, &ce) {
			return PutResult{}, fmt.Errorf("homer: put %s: %w", impu, err)
		}
		cur = ce.Current
	}
	return PutResult{}, fmt.Errorf("homer: put %s: %d concurrent writes in a row: %w", impu, casAttempts, kv.ErrConflict)
}

// Delete removes impu's document, or returns ErrNotFound.
func (s *Store) Delete(ctx context.Context, impu string) error {
	return s.DeleteIf(ctx, impu, Cond{})
}

// DeleteIf is Delete when c holds for the stored document; otherwise it
// returns ErrPreconditionFailed.
func (s *Store) DeleteIf(ctx context.Context, impu string, c Cond) error {
	k, err := key(impu)
	if err != nil {
		return fmt.Errorf("homer: delete: %w", err)
	}
	cur, err := s.version(ctx, k)
	if err != nil {
		return fmt.Errorf("homer: delete %s: %w", impu, err)
	}
	for range casAttempts {
		if !c.holds(cur) {
			return fmt.Errorf("homer: delete %s: %w", impu, ErrPreconditionFailed)
		}
		if cur == 0 {
			return fmt.Errorf("homer: delete %s: %w", impu, ErrNotFound)
		}
		err := s.kv.DeleteIf(ctx, k, cur)
		if err == nil {
			return nil
		}
		var ce *kv.ConflictError
		if !errors.As(err, &ce) {
			return fmt.Errorf("homer: delete %s: %w", impu, err)
		}
		cur = ce.Current
	}
	return fmt.Errorf("homer: delete %s: %d concurrent writes in a row: %w", impu, casAttempts, kv.ErrConflict)
}

// PutDefault stores DefaultDocument for each IMPU, replacing what they
// have: the bulk path of provisioning. It checks every IMPU before writing
// any, then writes through kv.PutBatch, one command per shard for up to
// kv.MaxBatchItems identities. On error some identities may have been
// written; running it again is harmless.
func (s *Store) PutDefault(ctx context.Context, impus []string) error {
	// An empty record stands for the default document (no stored document
	// can be empty: validation refuses it), so a million new subscribers do
	// not each replicate a copy of the same kilobyte.
	var doc []byte
	items := make([]kv.BatchItem, 0, len(impus))
	seen := make(map[string]bool, len(impus))
	for _, impu := range impus {
		k, err := key(impu)
		if err != nil {
			return fmt.Errorf("homer: put default documents: %w", err)
		}
		if seen[k] {
			continue
		}
		seen[k] = true
		items = append(items, kv.BatchItem{Key: k, Value: doc})
	}
	if err := s.kv.PutBatch(ctx, items); err != nil {
		return fmt.Errorf("homer: put default documents for %d identities: %w", len(items), err)
	}
	return nil
}

// version returns the version of the record under k, 0 if there is none.
func (s *Store) version(ctx context.Context, k string) (kv.Version, error) {
	rec, err := s.kv.Get(ctx, k)
	if errors.Is(err, kv.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	return rec.Version, nil
}
