// Package config reads and validates a Stillwater node's configuration: the
// three name=value files Clearwater keeps in /etc/clearwater (local_config,
// shared_config and user_settings) and the shared JSON and XML documents an
// operator uploads to the site (s-cscf.json, bgcf.json, enum.json, rph.json,
// dns.json, sas.json, shared_ifcs.xml and fallback_ifcs.xml).
//
// Every option Clearwater documents keeps its name, meaning and default, so
// a Clearwater deployment's files can be used as they are; Stillwater adds a
// few options of its own (see Options). Input is refused rather than guessed
// at: an unknown option, a malformed line or a value of the wrong type is an
// error naming the file, the line and the option, and all the problems in
// the input are reported together.
//
// Positions in JSON documents are written as in jq, counting from zero
// (s-cscfs[0] is the first S-CSCF); positions in XML documents are written
// as in XPath, counting from one, after the line number.
package config
