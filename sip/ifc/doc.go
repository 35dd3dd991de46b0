// Package ifc is the S-CSCF's initial filter criteria engine: it reads the
// iFCs of a service profile (and the shared_ifcs.xml and fallback_ifcs.xml
// documents) per 3GPP TS 29.228 Annex B, and decides which application
// servers a request triggers per TS 29.228 Annex F and TS 24.229
// §5.4.3.2/§5.4.3.3, in priority order, for the AS chain built on it.
//
// Parsing never gives up on a whole document because of one bad iFC: the
// iFC is left out and the problem reported with its line and element path,
// so that the same code serves as the runtime reader and as the validator
// of uploaded configuration.
package ifc
