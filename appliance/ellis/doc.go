// Package ellis is the subscriber self-service portal: Clearwater's Ellis
// JSON API (accounts, sessions, numbers, simservs, iFCs, NGV-API-Key) and its
// web pages, over accounts and a number pool kept in the site's replicated kv
// store.
//
// # Data
//
// Three kv tables hold Ellis's own state; subscriber data (identities,
// credentials, iFCs) and MMTEL settings documents stay in the stores behind
// the Subscribers and Simservs interfaces.
//
//   - ellis_account/<lower-case email>: the account, its bcrypt password
//     hash, a session epoch (raised when the password changes, which voids
//     every session cookie issued before), a pending recovery token's hash,
//     and the SIP URIs of its lines.
//   - ellis_number/<sip uri>: one number of the pool, with its owner (empty
//     while free) and the private identity its line uses.
//   - ellis_free/<p|n>/<sip uri>: the free PSTN (p) and on-net (n) numbers,
//     so allocation reads a few candidates instead of the whole pool.
//
// kv has no transactions across records, so every multi-record change is
// ordered so that a crash at any point leaves nothing visible that is wrong:
//
//   - A number belongs to an account only when the number record names the
//     account as owner and the account lists the number. Allocation first
//     lists the number in the account, then claims the number record with
//     compare-and-set (the race between allocators is decided here), then
//     drops its free-list entry, then provisions the subscriber and the
//     simservs document, backing the claim out if that fails.
//   - Release removes the subscriber and the document, frees the number
//     record, puts the number back on the free list, and finally unlists it.
//   - A free-list entry whose number turns out to be owned (or gone) is
//     deleted by the allocator that finds it; a free number missing from the
//     free list is put back by CreateNumbers, which is idempotent.
//   - A pool number the subscriber store already has (provisioned by other
//     means) is taken out of the pool when an allocation runs into it.
//
// # Sessions and forgery
//
// A session is a signed cookie (HMAC-SHA256 under ellis_cookie_key) naming
// the account, the account's session epoch, an expiry and a random nonce.
// Web forms carry a token derived from that nonce (double submit bound to the
// session; before login, bound to a random nonce in its own cookie), and
// every unsafe request is also checked with net/http's cross-origin
// protection (Sec-Fetch-Site / Origin), which leaves scripts without those
// headers, like Clearwater's, working with cookies or NGV-API-Key.
package ellis
