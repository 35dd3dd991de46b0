package config

import (
	"errors"

	"stillwater/sip/ifc"
)

// The iFC documents follow the InitialFilterCriteria schema of 3GPP TS
// 29.228 (CxDataType). They are checked by the S-CSCF's own iFC reader
// (sip/ifc), so that a document the validator accepts is one the S-CSCF
// applies as written; its errors carry the line and element path.

func validateSharedIFCs(file string, content []byte) error {
	return validateIFCSet(file, content, "SharedIFCsSets")
}

func validateFallbackIFCs(file string, content []byte) error {
	return validateIFCSet(file, content, "FallbackIFCsSet")
}

func validateIFCSet(file string, content []byte, root string) error {
	sets, errs := ifc.ParseSet(content)
	var out []error
	for _, e := range errs {
		var ie *ifc.Error
		if errors.As(e, &ie) {
			out = append(out, &Error{File: file, Line: ie.Line, Path: ie.Path, Msg: ie.Msg})
			continue
		}
		out = append(out, &Error{File: file, Msg: e.Error()})
	}
	if len(errs) == 0 && sets.Root != root {
		out = append(out, &Error{File: file, Line: 1, Msg: "the root element must be <" + root + ">, not <" + sets.Root + ">"})
	}
	return errors.Join(out...)
}
