// Package homer is the site's XDMS: it keeps each public identity's MMTEL
// settings document (simservs.xml, 3GPP TS 24.623) in the replicated kv store,
// validates every document before storing it, and serves the documents over
// XCAP (RFC 4825) on Clearwater's Homer paths.
//
// # Documents
//
// A document is a <simservs> element in the namespace
// http://uri.etsi.org/ngn/params/xml/simservs/xcap holding the services of
// TS 24.607 (originating identity presentation and its restriction), TS 24.608
// (terminating identity presentation and its restriction), TS 24.615
// (communication waiting), TS 24.604 (communication diversion) and TS 24.611
// (incoming and outgoing communication barring). Diversion and barring rules
// are RFC 4745 common-policy rulesets.
//
// Parse validates a document against that schema by walking its parsed tree:
// namespaces, the elements each parent may hold and in what order, attribute
// and content types (booleans, the 5..180 s no-reply timer, sip/sips/tel
// targets, xs:ID rule ids), plus the constraints the schema leaves to prose
// (a rule id is unique within its ruleset, a diversion rule forwards
// somewhere, a barring rule says whether to allow). The first problem found
// is returned as a *ValidationError whose text names it, for instance
//
//	simservs.xml: communication-diversion: rule "cfb": forward-to has no target
//
// Elements in other namespaces are accepted where the schemas allow
// extensions (conditions, actions, transformations, <extensions>); elements
// in the simservs or common-policy namespaces that the schemas do not define
// are refused. Foreign conditions are reported in Conditions.Unsupported so
// that the application server can treat such a rule as not matching, as
// RFC 4745 asks.
//
// Parse also returns the typed view of the document that the MMTEL
// application server acts on; Marshal turns a view back into a document.
//
// # Storage
//
// Store keeps one kv record per identity, key "simservs/<impu>", holding the
// document exactly as it was written. The record's kv version is the
// document's XCAP entity tag, so If-Match and If-None-Match map onto kv
// compare-and-set.
//
// # XCAP
//
// NewHandler serves /org.etsi.ngn.simservs/users/<impu>/simservs.xml with
// GET, HEAD, PUT and DELETE on whole documents, as Clearwater's Homer did. Node
// selectors (".../simservs.xml/~~/...") are answered with 501. There is no
// authentication: like Homer, the port must only be reachable from the
// site's own nodes and trusted provisioning systems.
package homer
