package homer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"

	"stillwater/kv"
	"stillwater/kv/kvtest"
)

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func newStore(t *testing.T, opts Options) (*Store, *kvtest.Site) {
	t.Helper()
	site := kvtest.New(t, 4)
	opts.Logger = quietLogger()
	return New(site.KV, opts), site
}

func TestStore(t *testing.T) {
	s, _ := newStore(t, Options{})
	ctx := context.Background()
	const alice = "sip:alice@example.com"
	cdiv := readFile(t, "testdata/good/diversion.xml")

	if _, err := s.Get(ctx, alice); !errors.Is(err, ErrNotFound) {
		t.Fatalf("get before put: %v", err)
	}
	created, err := s.Put(ctx, alice, DefaultDocument())
	if err != nil || !created.Created || created.Version == 0 {
		t.Fatalf("create: %+v, %v", created, err)
	}
	replaced, err := s.Put(ctx, alice, cdiv)
	if err != nil || replaced.Created || replaced.Version <= created.Version {
		t.Fatalf("replace: %+v, %v", replaced, err)
	}
	doc, err := s.Get(ctx, alice)
	if err != nil || string(doc.XML) != string(cdiv) || doc.Version != replaced.Version {
		t.Fatalf("get: version %d, %v\n%s", doc.Version, err, doc.XML)
	}
	view, err := s.Settings(ctx, alice, kv.LocalRead())
	if err != nil || view.Diversion == nil || len(view.Diversion.Rules) != 5 {
		t.Fatalf("settings: %+v, %v", view, err)
	}

	// Invalid documents change nothing.
	_, err = s.Put(ctx, alice, readFile(t, "testdata/bad/no-target.xml"))
	var ve *ValidationError
	if !errors.As(err, &ve) || ve.Error() != `simservs.xml: communication-diversion: rule "cfb": forward-to has no target` {
		t.Fatalf("invalid put: %v", err)
	}
	if doc, _ := s.Get(ctx, alice); doc.Version != replaced.Version {
		t.Fatal("an invalid put changed the document")
	}

	// Preconditions.
	for _, c := range []Cond{
		{Versions: []kv.Version{created.Version}}, // stale
		{Absent: true},
		{NotVersions: []kv.Version{replaced.Version}},
		{Versions: []kv.Version{0}},
	} {
		if _, err := s.PutIf(ctx, alice, DefaultDocument(), c); !errors.Is(err, ErrPreconditionFailed) {
			t.Errorf("put if %+v: %v", c, err)
		}
	}
	res, err := s.PutIf(ctx, alice, DefaultDocument(), Cond{Exists: true, Versions: []kv.Version{created.Version, replaced.Version}})
	if err != nil || res.Created {
		t.Fatalf("put if current: %+v, %v", res, err)
	}
	if _, err := s.PutIf(ctx, "tel:+16505550100", DefaultDocument(), Cond{Exists: true}); !errors.Is(err, ErrPreconditionFailed) {
		t.Errorf("put if exists on a new identity: %v", err)
	}
	if err := s.DeleteIf(ctx, alice, Cond{Versions: []kv.Version{replaced.Version}}); !errors.Is(err, ErrPreconditionFailed) {
		t.Errorf("delete if stale: %v", err)
	}

	if err := s.Delete(ctx, alice); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, alice); !errors.Is(err, ErrNotFound) {
		t.Errorf("second delete: %v", err)
	}
	if _, err := s.Get(ctx, alice); !errors.Is(err, ErrNotFound) {
		t.Errorf("get after delete: %v", err)
	}

	for _, bad := range []string{"", "alice@example.com", "sip:", "mailto:alice@example.com", "sip:alice @example.com"} {
		if _, err := s.Put(ctx, bad, DefaultDocument()); !errors.Is(err, ErrBadIdentity) {
			t.Errorf("put for %q: %v", bad, err)
		}
	}
}

func TestStoreKnownIdentity(t *testing.T) {
	lookups := 0
	s, _ := newStore(t, Options{KnownIdentity: func(_ context.Context, impu string) (bool, error) {
		lookups++
		switch impu {
		case "sip:known@example.com":
			return true, nil
		case "sip:broken@example.com":
			return false, errors.New("subscriber store unavailable")
		}
		return false, nil
	}})
	ctx := context.Background()
	if _, err := s.Put(ctx, "sip:known@example.com", DefaultDocument()); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(ctx, "sip:stranger@example.com", DefaultDocument()); !errors.Is(err, ErrUnknownIdentity) {
		t.Errorf("unknown identity: %v", err)
	}
	if _, err := s.Put(ctx, "sip:broken@example.com", DefaultDocument()); err == nil || errors.Is(err, ErrUnknownIdentity) {
		t.Errorf("failed lookup: %v", err)
	}
	// Invalid documents are refused before the lookup.
	before := lookups
	if _, err := s.Put(ctx, "sip:known@example.com", []byte("<x/>")); !errors.Is(err, ErrInvalid) || lookups != before {
		t.Errorf("invalid document: %v after %d lookups", err, lookups-before)
	}
}

func TestPutDefault(t *testing.T) {
	s, _ := newStore(t, Options{})
	ctx := context.Background()
	// More than one batch command per shard.
	var impus []string
	for i := range 3 * kv.MaxBatchItems {
		impus = append(impus, fmt.Sprintf("sip:+1650555%04d@example.com", i), fmt.Sprintf("tel:+1650555%04d", i))
	}
	impus = append(impus, impus[0]) // duplicates are fine
	if err := s.PutDefault(ctx, impus); err != nil {
		t.Fatal(err)
	}
	for _, impu := range impus {
		doc, err := s.Get(ctx, impu)
		if err != nil || string(doc.XML) != string(DefaultDocument()) {
			t.Fatalf("%s: %v", impu, err)
		}
	}

	// One bad identity and nothing is written.
	if err := s.PutDefault(ctx, []string{"sip:new@example.com", "bob"}); !errors.Is(err, ErrBadIdentity) {
		t.Fatalf("bad identity: %v", err)
	}
	if _, err := s.Get(ctx, "sip:new@example.com"); !errors.Is(err, ErrNotFound) {
		t.Errorf("batch with a bad identity wrote: %v", err)
	}
	if err := s.PutDefault(ctx, nil); err != nil {
		t.Errorf("empty batch: %v", err)
	}
}

// TestConcurrentPuts checks that racing writers see exactly one creation
// and all succeed.
func TestConcurrentPuts(t *testing.T) {
	s, _ := newStore(t, Options{})
	ctx := context.Background()
	const writers = 8
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		created int
		errs    []error
	)
	for range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := s.Put(ctx, "sip:busy@example.com", DefaultDocument())
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
			} else if res.Created {
				created++
			}
		}()
	}
	wg.Wait()
	if len(errs) > 0 || created != 1 {
		t.Fatalf("%d created, errors %v", created, errs)
	}
}
