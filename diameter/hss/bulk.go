package hss

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"

	"stillwater/kv"
)

// Subscriber is one complete subscriber for bulk provisioning: a public
// identity in an IRS and service profile of its own, with its iFCs, and the
// private identity that authenticates it.
type Subscriber struct {
	PublicID string
	// PrivateID defaults to the public identity without its sip: scheme.
	PrivateID string
	// Realm defaults to the public identity's domain.
	Realm string
	// Password is the SIP password; it is stored in plaintext only with
	// KeepPassword. DigestHA1 may be given instead.
	Password     string
	KeepPassword bool
	DigestHA1    string
	// IFC is the iFC document (a ServiceProfile element); "" means
	// Options.DefaultIFC for the public identity's domain.
	IFC string
	AKA *AKACredentials
}

// BulkResult reports a bulk provisioning request.
type BulkResult struct {
	Created int
	// Skipped lists the public identities that were already provisioned
	// (by an earlier, perhaps interrupted, run or otherwise) and were left
	// as they are.
	Skipped []string
	Failed  []BulkFailure
}

// BulkFailure is a subscriber bulk provisioning refused.
type BulkFailure struct {
	PublicID string
	Error    string
}

// MaxBulk is the most subscribers one Provision call takes.
const MaxBulk = 10000

// bulkItem is a subscriber being provisioned.
type bulkItem struct {
	impu, impi string
	cred       impiRecord
	ifc        string // content hash
	skip       bool
}

// Provision creates many complete subscribers with few replicated writes:
// the records are grouped by shard into batch commands, written in two
// phases (IMPIs and IRSs, then the IMPU index records that make the
// subscribers visible) with the SimservsWriter hook between them. Public
// identities that already exist are skipped; an existing private identity
// keeps its credentials and gains the new IRS. IRS and service profile ids
// derive from the public identity, so re-running an interrupted request
// converges on the same records. Invalid subscribers are reported in
// Failed; an error means a write failed and the request may be re-run.
func (s *Store) Provision(ctx context.Context, subs []Subscriber) (BulkResult, error) {
	var res BulkResult
	if len(subs) > MaxBulk {
		return res, invalid("%d subscribers in one request; the limit is %d", len(subs), MaxBulk)
	}
	items, ifcDocs := s.checkBulk(subs, &res)

	// Which subscribers and private identities exist already?
	impis := map[string]bool{}
	var impiList, impuList []string
	for _, it := range items {
		impuList = append(impuList, it.impu)
		if _, ok := impis[it.impi]; !ok {
			impis[it.impi] = false
			impiList = append(impiList, it.impi)
		}
	}
	var haveIMPU, haveIMPI map[string]bool
	err := parallel(ctx, 2, 2, func(ctx context.Context, i int) error {
		var err error
		if i == 0 {
			haveIMPU, err = s.existing(ctx, tableIMPU, impuList)
		} else {
			haveIMPI, err = s.existing(ctx, tableIMPI, impiList)
		}
		return err
	})
	if err != nil {
		return res, fmt.Errorf("hss: bulk: %w", err)
	}
	for _, it := range items {
		it.skip = haveIMPU[it.impu]
	}
	for impi := range impis {
		impis[impi] = haveIMPI[impi]
	}

	// Build the records of the subscribers to create.
	var (
		phase1, phase2 []kv.BatchItem
		created        []string
		newIMPIs       = map[string]*impiRecord{}
		grow           = map[string][]string{} // existing IMPI → IRSs to add
	)
	for _, it := range items {
		if it.skip {
			res.Skipped = append(res.Skipped, it.impu)
			continue
		}
		irs, sp := derivedID("irs", it.impu), derivedID("sp", it.impu)
		if impis[it.impi] {
			grow[it.impi] = append(grow[it.impi], irs)
		} else if rec := newIMPIs[it.impi]; rec != nil {
			rec.IRS = append(rec.IRS, irs)
		} else {
			rec := it.cred
			rec.IRS = []string{irs}
			newIMPIs[it.impi] = &rec
		}
		item, err := batchItem(s.irss, irs, irsRecord{
			Profiles: []profileRecord{{ID: sp, IFC: it.ifc}},
			Publics:  []string{it.impu},
			Privates: []string{it.impi},
		})
		if err != nil {
			return res, err
		}
		phase1 = append(phase1, item)
		item, err = batchItem(s.impus, it.impu, impuRecord{IRS: irs, SP: sp, XML: publicIdentityXML(it.impu, false)})
		if err != nil {
			return res, err
		}
		phase2 = append(phase2, item)
		created = append(created, it.impu)
	}
	if len(created) == 0 {
		return res, nil
	}
	for impi, rec := range newIMPIs {
		item, err := batchItem(s.impis, impi, *rec)
		if err != nil {
			return res, err
		}
		phase1 = append(phase1, item)
	}

	// The iFC documents and the hints on existing IMPIs come before the
	// records that refer to them.
	var ifcItems []kv.BatchItem
	for key, doc := range ifcDocs {
		if !s.ifcKnown(key) {
			ifcItems = append(ifcItems, kv.BatchItem{Key: tableIFC + "/" + key, Value: []byte(doc.raw)})
		}
	}
	if err := s.putBatch(ctx, ifcItems); err != nil {
		return res, fmt.Errorf("hss: bulk: iFC documents: %w", err)
	}
	for key, doc := range ifcDocs {
		s.cacheIFC(key, doc)
	}
	growList := make([]string, 0, len(grow))
	for impi := range grow {
		growList = append(growList, impi)
	}
	err = parallel(ctx, len(growList), 32, func(ctx context.Context, i int) error {
		impi := growList[i]
		_, err := update(ctx, s.impis, impi, func(v *impiRecord, exists bool) error {
			if !exists {
				return notFound("private identity %q (deleted during bulk provisioning)", impi)
			}
			n := len(v.IRS)
			for _, irs := range grow[impi] {
				if !contains(v.IRS, irs) {
					v.IRS = append(v.IRS, irs)
				}
			}
			if len(v.IRS) == n {
				return errUnchanged
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("hss: bulk: private identity %q: %w", impi, err)
		}
		return nil
	})
	if err != nil {
		return res, err
	}
	if err := s.putBatch(ctx, phase1); err != nil {
		return res, fmt.Errorf("hss: bulk: private identities and IRSs: %w", err)
	}
	if s.opts.Simservs != nil {
		if err := s.opts.Simservs.PutDefault(ctx, created); err != nil {
			return res, fmt.Errorf("hss: bulk: simservs documents: %w", err)
		}
	}
	if err := s.putBatch(ctx, phase2); err != nil {
		return res, fmt.Errorf("hss: bulk: public identities: %w", err)
	}
	res.Created = len(created)
	return res, nil
}

// checkBulk validates the subscribers, reporting the bad ones in res, and
// returns the good ones with the distinct iFC documents they use, by hash.
func (s *Store) checkBulk(subs []Subscriber, res *BulkResult) ([]*bulkItem, map[string]serviceProfileDoc) {
	items := make([]*bulkItem, 0, len(subs))
	ifcDocs := map[string]serviceProfileDoc{}
	ifcKeys := map[string]string{} // document → hash, checked once
	ifcErrs := map[string]error{}
	seen := make(map[string]bool, len(subs))
	for _, sub := range subs {
		fail := func(err error) {
			res.Failed = append(res.Failed, BulkFailure{PublicID: sub.PublicID, Error: err.Error()})
		}
		if err := CheckPublicID(sub.PublicID); err != nil {
			fail(err)
			continue
		}
		if IsWildcard(sub.PublicID) {
			fail(invalid("wildcard identities are provisioned through the IRS API, not in bulk"))
			continue
		}
		if seen[sub.PublicID] {
			fail(invalid("%q appears more than once in the request", sub.PublicID))
			continue
		}
		seen[sub.PublicID] = true
		impi := sub.PrivateID
		if impi == "" {
			impi = DefaultPrivateID(sub.PublicID)
		}
		realm := sub.Realm
		if realm == "" {
			realm = DefaultRealm(sub.PublicID, s.opts.HomeDomain)
		}
		cred, err := s.credentialRecord(impi, Credentials{Realm: realm, DigestHA1: sub.DigestHA1, PlaintextPassword: sub.Password, AKA: sub.AKA})
		if !sub.KeepPassword {
			cred.Password = ""
		}
		if err != nil {
			fail(err)
			continue
		}
		doc := sub.IFC
		if doc == "" {
			doc = s.opts.DefaultIFC(DefaultRealm(sub.PublicID, s.opts.HomeDomain))
		}
		key, ok := ifcKeys[doc]
		if !ok {
			if err, bad := ifcErrs[doc]; bad {
				fail(err)
				continue
			}
			parsed, err := parseServiceProfile([]byte(doc))
			if err != nil {
				ifcErrs[doc] = err
				fail(err)
				continue
			}
			key = ifcKey([]byte(doc))
			ifcKeys[doc] = key
			ifcDocs[key] = parsed
		}
		items = append(items, &bulkItem{impu: sub.PublicID, impi: impi, cred: cred, ifc: key})
	}
	return items, ifcDocs
}

func batchItem[T any](t *kv.Table[T], key string, v T) (kv.BatchItem, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return kv.BatchItem{}, fmt.Errorf("hss: encode %s: %w", t.Key(key), err)
	}
	return kv.BatchItem{Key: t.Key(key), Value: b}, nil
}

// putBatch writes items with one batch command per shard (and per
// kv.MaxBatchItems), all shards at once.
func (s *Store) putBatch(ctx context.Context, items []kv.BatchItem) error {
	var groups [][]kv.BatchItem
	if s.opts.ShardOf != nil {
		byShard := map[int][]kv.BatchItem{}
		for _, it := range items {
			sh := s.opts.ShardOf(it.Key)
			byShard[sh] = append(byShard[sh], it)
		}
		for _, g := range byShard {
			for len(g) > kv.MaxBatchItems {
				groups = append(groups, g[:kv.MaxBatchItems])
				g = g[kv.MaxBatchItems:]
			}
			groups = append(groups, g)
		}
	} else {
		// Without the shard map, chunks still spread over the shards and
		// run side by side.
		const chunk = 512
		for len(items) > chunk {
			groups = append(groups, items[:chunk])
			items = items[chunk:]
		}
		if len(items) > 0 {
			groups = append(groups, items)
		}
	}
	return parallel(ctx, len(groups), 16, func(ctx context.Context, i int) error {
		return s.kv.PutBatch(ctx, groups[i])
	})
}

// existing reports which of keys (table keys of table) exist. With the
// shard map it reads each shard's stretch of the table that holds the keys
// with range scans, a handful of queries instead of one per key; keys
// scattered among many other records fall back to single reads.
func (s *Store) existing(ctx context.Context, table string, keys []string) (map[string]bool, error) {
	found := make(map[string]bool, len(keys))
	var mu sync.Mutex
	mark := func(k string) {
		mu.Lock()
		found[k] = true
		mu.Unlock()
	}
	prefix := table + "/"
	get := func(ctx context.Context, key string) error {
		_, err := s.kv.Get(ctx, prefix+key)
		switch {
		case err == nil:
			mark(key)
		case !errors.Is(err, kv.ErrNotFound):
			return fmt.Errorf("read %s%s: %w", prefix, key, err)
		}
		return nil
	}
	if s.opts.ShardOf == nil {
		return found, parallel(ctx, len(keys), 64, func(ctx context.Context, i int) error { return get(ctx, keys[i]) })
	}
	byShard := map[int][]string{}
	for _, k := range keys {
		sh := s.opts.ShardOf(prefix + k)
		byShard[sh] = append(byShard[sh], k)
	}
	shards := make([]int, 0, len(byShard))
	for sh := range byShard {
		shards = append(shards, sh)
	}
	err := parallel(ctx, len(shards), 16, func(ctx context.Context, i int) error {
		shard := shards[i]
		group := byShard[shard]
		slices.Sort(group)
		want := make(map[string]bool, len(group))
		for _, k := range group {
			want[k] = true
		}
		last := group[len(group)-1]
		budget := 2*len(group) + 256 // records read before giving up on scanning
		after := before(prefix + group[0])
		for {
			recs, next, err := s.kv.ScanShard(ctx, shard, prefix, after, min(len(group)+64, 10000))
			if err != nil {
				return err
			}
			for _, r := range recs {
				k := strings.TrimPrefix(r.Key, prefix)
				if k > last {
					return nil
				}
				if want[k] {
					mark(k)
				}
			}
			budget -= len(recs)
			if next == "" {
				return nil
			}
			after = next
			if budget <= 0 {
				// Crowded with other records: look up the rest one by one.
				rest := group[sort.SearchStrings(group, strings.TrimPrefix(after, prefix)):]
				return parallel(ctx, len(rest), 32, func(ctx context.Context, j int) error { return get(ctx, rest[j]) })
			}
		}
	})
	return found, err
}

// before returns a key that sorts just before k: no valid (UTF-8) key lies
// between them.
func before(k string) string {
	b := []byte(k)
	if b[len(b)-1] == 0 {
		return k[:len(k)-1]
	}
	b[len(b)-1]--
	return string(b) + "\xff\xff\xff\xff"
}
