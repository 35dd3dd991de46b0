// Package sitetest holds Stillwater's end-to-end acceptance tests. They build
// the stillwater binary, run sites of real node processes on 127.0.0.1 to
// 127.0.0.4, and check the product's promises from outside, through the admin
// API, the Chronos timer API and the stillwater command: data and timers
// survive kill -9 and restarts, the kv store stays linearizable while nodes
// die, timers pop on time across a leader failover, nodes join, leave and are
// removed under load, a partitioned minority refuses writes and catches up,
// bad input and damaged data directories are refused, and a backup restores
// onto a fresh site.
//
// The package has no code of its own; everything is in its tests. Long tests
// are skipped with -short.
package sitetest
