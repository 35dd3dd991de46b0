// Package timerwheel is the site's replicated timer service, Chronos's
// replacement: timers live in the data shards, replicated by consensus, and
// the leader of each shard pops that shard's timers.
//
// A timer is a record in its shard's store (bucket "timerwheel.timers"),
// changed only by committed commands: Set (create or replace), Delete, Pop (a
// delivered pop: the timer moves to its next sequence number or goes) and
// Import (restore). Apply reads no clock: a timer's start time is the proposing
// leader's clock stamped on the entry, and its due times derive from it.
// Apply also keeps exact per-shard counts of the timers' statistics tags, so
// Stats is exact rather than divided by a replication factor as in Chronos.
//
// The leader of a shard holds a hierarchical timing wheel (wheel.go, pure and
// clock-free) of 16-byte entries: id and due time. An entry is only a prompt:
// at pop time the record is read, and a timer deleted, replaced or already
// moved on is skipped, so the wheel needs no index and is never updated in
// place. On gaining leadership the node commits a Rescan marker; when it
// applies, every earlier entry is in the store and the wheel is rebuilt from
// it, so a timer that came due during the failover pops at once.
//
// Pops are at least once: a pop is delivered (an HTTP POST answered 200, or an
// in-process handler returning nil) and then committed; a failed delivery is
// retried with backoff for as long as the timer exists and this node leads,
// and a leader that fails between delivery and commit leaves the pop to its
// successor. At most one delivery per timer is in progress on a node.
//
// The HTTP API (HTTPHandler) is Chronos's, served by the node on port 7253;
// the SIP and Diameter functions use Set and Delete with in-process callbacks
// registered with Register.
package timerwheel
