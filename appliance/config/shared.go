package config

import (
	"fmt"
	"strings"
)

// documents are the shared documents an operator uploads, by the name
// Clearwater's cw-config gives them, in the order Names lists them.
var documents = []struct {
	name, file string
	validate   func(file string, content []byte) error
}{
	{"shared_config", "shared_config", func(_ string, b []byte) error { return ParseShared(b) }},
	{"scscf_json", "s-cscf.json", validateSCSCF},
	{"bgcf_json", "bgcf.json", validateBGCF},
	{"enum_json", "enum.json", validateENUM},
	{"rph_json", "rph.json", validateRPH},
	{"dns_json", "dns.json", validateDNS},
	{"sas_json", "sas.json", validateSAS},
	{"shared_ifcs", "shared_ifcs.xml", validateSharedIFCs},
	{"fallback_ifcs", "fallback_ifcs.xml", validateFallbackIFCs},
}

// Names returns the names of the shared documents Validate accepts.
func Names() []string {
	out := make([]string, len(documents))
	for i, d := range documents {
		out[i] = d.name
	}
	return out
}

// FileName returns the file a shared document is kept in (scscf_json is
// s-cscf.json), or "" if name is not one.
func FileName(name string) string {
	for _, d := range documents {
		if d.name == name {
			return d.file
		}
	}
	return ""
}

// Validate checks the content of the shared document called name before an
// upload is accepted. Errors name the document by its file name.
func Validate(name string, content []byte) error {
	for _, d := range documents {
		if d.name == name {
			return d.validate(d.file, content)
		}
	}
	return fmt.Errorf("unknown configuration %q: valid names are %s", name, strings.Join(Names(), ", "))
}
