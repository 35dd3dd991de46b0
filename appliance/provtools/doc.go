// Package provtools is the stillwater command's subscriber provisioning:
// `stillwater users create|update|delete|display|list|import`, what
// Clearwater's clearwater-prov-tools did, talking to a node's
// Homestead-prov API over HTTP.
package provtools
