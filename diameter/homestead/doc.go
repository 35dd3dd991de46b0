// Package homestead serves the site's subscriber data over Clearwater's
// HTTP interfaces, with Clearwater's paths, bodies and status codes; both
// are http.Handlers over an hss.Store.
//
// NewProvHandler is Homestead-prov (port 8889), the provisioning API:
//
//	/ping                                                GET → "OK"
//	/private/<impi>                                      GET, PUT {"digest_ha1"|"plaintext_password", "realm", "aka"}, DELETE (204 if absent)
//	/private/<impi>/associated_implicit_registration_sets[/<irs>]   GET; PUT, DELETE
//	/private/<impi>/associated_public_ids                GET
//	/irs                                                 POST → 201, Location: /irs/<id>
//	/irs/<id>                                            GET, DELETE (204 if absent)
//	/irs/<id>/public_ids, /irs/<id>/private_ids[/<impi>] GET; PUT, DELETE
//	/irs/<id>/service_profiles                           POST → 201, Location
//	/irs/<id>/service_profiles/<sp>                      DELETE (204 if absent)
//	/irs/<id>/service_profiles/<sp>/public_ids[/<impu>]  GET; GET, PUT (PublicIdentity XML), DELETE
//	/irs/<id>/service_profiles/<sp>/filter_criteria      GET, PUT (ServiceProfile XML with iFCs)
//	/public/<impu>/service_profile, /public/<impu>/irs/  GET → 303 to the profile or IRS
//	/public/<impu>/associated_private_ids                GET
//	/public/                                             GET: every public identity, streamed
//	/bulk/subscribers                                    POST BulkRequest → BulkResponse
//
// NewHandler is Homestead (port 8888), what an S-CSCF or I-CSCF asks:
//
//	/impi/<impi>/av[/digest|/aka]?impu=&resync-auth=     authentication vectors
//	/impi/<impi>/digest?public_id=                       the older digest form
//	/impi/<impi>/registration-status?impu=&auth-type=    User-Authorization
//	/impu/<impu>/location?originating=&auth-type=        Location-Info
//	/impu/<impu>/reg-data[?private_id=]                  GET; PUT {"reqtype", "server_name"}: ClearwaterRegData XML
//
// Errors are JSON ({"status", "message", "reason", "error": true}) with the
// reason naming the problem: malformed JSON or XML and bad values 400,
// identity mismatches 403, unknown identities 404, conflicting creates 409,
// storage without quorum 503.
package homestead
