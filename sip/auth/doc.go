// Package auth is the S-CSCF's authentication of SIP requests: it challenges
// REGISTERs (401, WWW-Authenticate) and other requests (407,
// Proxy-Authenticate) with SIP digest (MD5, qop=auth) or IMS AKA (AKAv1-MD5,
// AKAv2-MD5) vectors from the subscriber store, and verifies the responses.
//
// Challenges live in kv, keyed by private identity and nonce with a TTL, so
// that the response to a challenge issued by one node can be checked by any
// other. A nonce is single-use unless nonce counts are supported, in which
// case it may be reused with a strictly increasing nc (the highest seen is
// kept with compare-and-set). Failures map to SIP statuses: a malformed
// header is 400, a wrong response or unknown identity 403, an unknown or
// expired nonce a fresh challenge with stale=true, and a failing store 500 or
// 504, never 403.
package auth
