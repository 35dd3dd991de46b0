package config

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestValidateGolden validates each testdata/shared/<name>/* as document name.
func TestValidateGolden(t *testing.T) {
	inputs, err := filepath.Glob("testdata/shared/*/*")
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, in := range inputs {
		if ext := filepath.Ext(in); ext == ".err" || ext == ".golden" {
			continue
		}
		name := filepath.Base(filepath.Dir(in))
		seen[name] = true
		t.Run(in, func(t *testing.T) {
			b, err := os.ReadFile(in)
			if err != nil {
				t.Fatal(err)
			}
			checkResult(t, in, "", Validate(name, b))
		})
	}
	for _, name := range Names() {
		if !seen[name] {
			t.Errorf("no test inputs for %s", name)
		}
	}
}

func TestNames(t *testing.T) {
	want := map[string]string{
		"shared_config": "shared_config",
		"scscf_json":    "s-cscf.json",
		"bgcf_json":     "bgcf.json",
		"enum_json":     "enum.json",
		"rph_json":      "rph.json",
		"dns_json":      "dns.json",
		"sas_json":      "sas.json",
		"shared_ifcs":   "shared_ifcs.xml",
		"fallback_ifcs": "fallback_ifcs.xml",
	}
	names := Names()
	if len(names) != len(want) {
		t.Errorf("Names() = %q", names)
	}
	for _, n := range names {
		if got := FileName(n); got != want[n] {
			t.Errorf("FileName(%q) = %q, want %q", n, got, want[n])
		}
	}
	names[0] = "changed"
	if slices.Contains(Names(), "changed") {
		t.Error("Names() shares its slice")
	}
	if got := FileName("nope"); got != "" {
		t.Errorf(`FileName("nope") = %q`, got)
	}
}

func TestValidateUnknownName(t *testing.T) {
	err := Validate("s-cscf.json", []byte("{}"))
	if err == nil || !strings.Contains(err.Error(), `unknown configuration "s-cscf.json": valid names are shared_config, scscf_json,`) {
		t.Fatalf("Validate: %v", err)
	}
}
