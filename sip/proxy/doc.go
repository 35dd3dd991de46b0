// Package proxy is the SIP core's transaction-stateful proxy engine. It
// receives requests through sipgo's transport and transaction layers, hands
// each initial request to the local service (P-CSCF, I-CSCF, S-CSCF ...) that
// its Route or arrival listener names, and carries out the service's
// decision: a response, or forwarding to one or more targets with parallel
// forking, RFC 3261 §16.7 response aggregation and CANCEL fan-out. A hop
// whose next target is another local service is made in memory with the
// same Route, Record-Route and response-path semantics as a hop over the
// wire; only traffic leaving the node is serialized. In-dialog requests
// follow their Route set without involving a service.
package proxy
