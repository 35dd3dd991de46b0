package config

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the .golden and .err files from the current output")

// checkGolden compares got with the file want, or rewrites it under -update.
func checkGolden(t *testing.T, want, got string) {
	t.Helper()
	if *update {
		if err := os.WriteFile(want, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	b, err := os.ReadFile(want)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if string(b) != got {
		t.Errorf("%s differs:\n--- got ---\n%s--- want ---\n%s", want, got, b)
	}
}

// checkResult compares an outcome with case's golden files: an input whose
// name starts with "bad_" must fail with the text in case.err, any other
// must succeed, its output matching case.golden when output is not "".
func checkResult(t *testing.T, input, output string, err error) {
	t.Helper()
	base := strings.TrimSuffix(input, filepath.Ext(input))
	bad := strings.HasPrefix(filepath.Base(input), "bad_")
	switch {
	case bad && err == nil:
		t.Fatalf("%s: accepted, want an error", input)
	case bad:
		checkGolden(t, base+".err", err.Error()+"\n")
	case err != nil:
		t.Fatalf("%s: %v", input, err)
	case output != "":
		checkGolden(t, base+".golden", output)
	}
}
