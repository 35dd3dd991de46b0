// Package appliance assembles a Stillwater node: it reads the Clearwater
// configuration files, starts the built-in replicated storage (consensus, kv,
// timerwheel), serves the node's HTTP interfaces (the Chronos-compatible timer
// API and the local admin API used by the stillwater command) and applies
// shared configuration changes live.
package appliance
