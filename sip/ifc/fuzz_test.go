package ifc

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func FuzzParse(f *testing.F) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.xml"))
	if err != nil {
		f.Fatal(err)
	}
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(wrap("<TriggerPoint>" + cnf(spt("0,1", true, header("k", "a|b")), spt("1", false, sdp("m", "video"))) + "</TriggerPoint>" + okAS)))
	req := parseRequest(f, invite)
	f.Fuzz(func(t *testing.T, doc []byte) {
		for _, parse := range []func([]byte) ([]IFC, []error){
			func(b []byte) ([]IFC, []error) { p, errs := Parse(b); return p.IFCs, errs },
			func(b []byte) ([]IFC, []error) {
				s, errs := ParseSet(b)
				out := slices.Clone(s.Fallback)
				for _, set := range s.Shared {
					out = append(out, set...)
				}
				Sort(out)
				return out, errs
			},
		} {
			ifcs, errs := parse(doc)
			for _, err := range errs {
				var e *Error
				if !errors.As(err, &e) || e.Msg == "" {
					t.Fatalf("error %v is not a described *Error", err)
				}
			}
			for i, f := range ifcs {
				if i > 0 && ifcs[i-1].Priority > f.Priority {
					t.Fatalf("iFCs out of priority order")
				}
				if f.AS.ServerName == "" {
					t.Fatalf("iFC without an AS was accepted")
				}
				if tp := f.Trigger; tp != nil {
					for _, s := range tp.SPTs {
						if s.Kind == 0 || len(s.Groups) == 0 || len(s.slots) != len(s.Groups) {
							t.Fatalf("SPT accepted without condition or group: %+v", s)
						}
					}
				}
			}
			// Whatever was accepted can be evaluated.
			for _, c := range []Case{origReg, termUnreg, {Session: OriginatingCDIV}} {
				Match(ifcs, req, c)
			}
		}
	})
}
