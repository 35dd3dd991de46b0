// Package kv keeps typed, versioned records in the site's replicated data
// shards: the registrations, authentication challenges, subscriptions and
// provisioning data the IMS functions share. It is a consensus.Machine
// (consensus.KindKV) hosted in every shard's bbolt store, and the client API
// that reaches those machines through consensus.Cluster.
//
// # Records
//
// A record is a key (table name, a slash, the table's own key, e.g.
// "reg/sip:alice@example.com"), a value, and metadata set by Apply:
//
//   - Version: the Raft index of the write that produced it. Versions are unique
//     and strictly increasing within a shard, so compare-and-set on them is safe
//     against ABA. After a restore (see Export) the shard's versions continue
//     above the highest version the exported shard ever issued:
//     version = max(Entry.Index, last+1), where last is the highest version
//     assigned or restored so far (restore commands carry the exported shard's
//     last as a floor). A bare max(Entry.Index, floor+1) would not do: every
//     write before the new log's index passes the floor would get floor+1, and
//     a client holding that version could overwrite a later write of the same
//     key. Once the index passes the floor, versions are plain Raft indexes
//     again.
//   - HLC: a hybrid logical clock (ms, logical) derived from Entry.Time and the
//     shard's previous HLC, never from a local clock.
//   - Site: the site whose node proposed the write.
//   - Expiry: optional absolute time (Unix ns) = Entry.Time + TTL, computed in
//     Apply from the TTL carried by the command.
//
// All changes made by one command share one version and one HLC.
//
// # Expiry
//
// Expired records are hidden from reads at once (a query carries the reader's
// clock) and treated as absent by conditional writes (Apply compares with
// Entry.Time). They are deleted by the shard leader: a sweeper goroutine per
// led shard proposes Expire commands as the earliest expiry passes. Apply
// deletes only records whose stored expiry is ≤ min(upTo, Entry.Time), so a
// record renewed in the meantime survives and nothing is removed before its
// time as the log measures it.
//
// # Change feed
//
// Every change (put, delete, expiry, restore) is appended to a per-shard feed
// keyed by (Raft index, position within the command) and trimmed in Apply to
// the newest Options.FeedRetention changes. FeedRetention therefore shapes
// replicated state and must be the same on every node of a site. An entry
// holds the change's key and record header but not the value: a put's value
// is read from the record while the put is the key's latest change, and a
// superseded put is left out of Feed's answers. So the feed costs no second
// copy of the data, however often records are rewritten.
//
// # Storage
//
// In each shard's store the machine owns four buckets: kv.records (key →
// record), kv.expiry (expiry ‖ key), kv.feed ((index ‖ n) → change) and kv.meta
// (highest version, HLC and feed counters). Commands, records and results use
// compact binary encodings pinned by golden files in testdata/.
package kv
