// Package hss is the site's subscriber master: it keeps the Home Subscriber
// Server data (private and public identities, implicit registration sets,
// service profiles with their initial filter criteria, and each set's
// registration state) in replicated kv records, and answers the questions the
// S-CSCF and I-CSCF ask of an HSS: authentication vectors (SIP digest, and
// IMS AKA generated locally with Milenage), registration data, registration
// status and location.
//
// # Data model
//
// The model is Homestead-prov's (TS 29.228 underneath):
//
//   - A private identity (IMPI) holds the credentials: an HA1 digest for a
//     realm (the plaintext password too, but only when asked to keep it) and
//     optionally AKA credentials (K, OPc, AMF, SQN).
//   - An implicit registration set (IRS) groups public identities that
//     register together. It holds service profiles, each with its iFC
//     document (a TS 29.228 ServiceProfile element), and the list of private
//     identities that may authenticate it. One IMPI may authenticate several
//     IRSs and one IRS may be authenticated by several IMPIs.
//   - A public identity (IMPU: a SIP or tel URI, or a wildcard such as
//     sip:650555!.*!@example.com) belongs to one service profile of one IRS
//     and carries its PublicIdentity XML, which says whether it is barred.
//   - Each IRS has a registration state (NOT_REGISTERED, UNREGISTERED,
//     REGISTERED) and the S-CSCF assigned to it, changed by the reg-data
//     request types of Clearwater's Homestead (reg, call, dereg-*).
//
// # Records and the order of writes
//
// Every change is a replicated kv write. The records of one subscriber live
// in different shards, so no change that touches several of them is atomic.
// Instead each relationship has one authoritative record, the other side
// keeps a hint (a superset of the truth), and writes are ordered so that a
// failure between them leaves at worst a stale hint, which readers ignore:
//
//   - hss.impu/<impu> is the authority for which IRS (and service profile) a
//     public identity belongs to, and holds its PublicIdentity XML. Its IRS's
//     list of public identities is a hint, written before the index and
//     cleared after it. An index counts only if its IRS exists; creating an
//     IMPU is a compare-and-set on the index, so two creates of one IMPU
//     cannot both win, and an index held by a live IRS blocks others (409).
//   - hss.irs/<id> is the authority for which IMPIs may authenticate the
//     IRS. The IMPI record's list of IRSs is a hint, written before the IRS
//     and cleared after it.
//   - hss.wild/<host> lists the wildcard identities of a domain, a hint
//     verified against each wildcard's own index record.
//   - hss.reg/<irs> holds the registration state; its absence means
//     NOT_REGISTERED.
//   - hss.ifc/<sha256> holds an iFC document by its content hash, written
//     before any service profile refers to it. Documents never change, so
//     they are cached in memory, and the million subscribers of a bulk load
//     that share the default iFC share one record. They are not collected
//     when no profile uses them any more: distinct documents are few.
//
// A public identity therefore becomes visible at the single write of its
// index record, after its IRS, service profile and (for bulk provisioning)
// IMPI exist, and disappears at the single delete of that record. Bulk
// provisioning finds which subscribers exist with a few range scans per
// shard, then writes the rest with batch commands grouped by shard, all
// shards at once, in two phases: IMPIs and IRSs first, then (after the
// SimservsWriter hook) the IMPU index records. An interrupted import thus
// never exposes a subscriber without credentials, iFCs or simservs, and
// re-running it skips the subscribers whose index exists. IRS and service
// profile ids of bulk subscribers are derived from the public identity, so
// a re-run rewrites the same records instead of creating new ones. Blind
// batch writes are the one place where a concurrent create of the same
// identity through the REST API could be overwritten; bulk loads are an
// operator's offline step, and this is what makes them fast.
//
// Records are JSON. Reads are linearizable.
package hss
