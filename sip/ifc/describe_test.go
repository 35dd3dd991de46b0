package ifc

import (
	"fmt"
	"strings"
)

// describe renders an iFC compactly so tests can compare whole parses.
func describe(f IFC) string {
	var b strings.Builder
	fmt.Fprintf(&b, "p=%d as=%s dh=%d", f.Priority, f.AS.ServerName, f.AS.DefaultHandling)
	if f.AS.ServiceInfo != "" {
		fmt.Fprintf(&b, " info=%q", f.AS.ServiceInfo)
	}
	if f.AS.IncludeRegisterRequest {
		b.WriteString(" +req")
	}
	if f.AS.IncludeRegisterResponse {
		b.WriteString(" +resp")
	}
	if f.ProfilePart != PartAny {
		fmt.Fprintf(&b, " part=%d", f.ProfilePart)
	}
	if f.Trigger == nil {
		return b.String()
	}
	if f.Trigger.CNF {
		b.WriteString(" CNF")
	} else {
		b.WriteString(" DNF")
	}
	for _, s := range f.Trigger.SPTs {
		b.WriteString(" ")
		if s.Negated {
			b.WriteString("!")
		}
		fmt.Fprintf(&b, "%v:", s.Groups)
		switch s.Kind {
		case CondRequestURI:
			fmt.Fprintf(&b, "RequestURI=%s", s.RequestURI)
		case CondMethod:
			fmt.Fprintf(&b, "Method=%s", s.Method)
			if len(s.RegistrationTypes) > 0 {
				fmt.Fprintf(&b, "%v", s.RegistrationTypes)
			}
		case CondSessionCase:
			fmt.Fprintf(&b, "SessionCase=%d", s.SessionCase)
		case CondSIPHeader:
			fmt.Fprintf(&b, "SIPHeader=%s", s.Header.Header)
			if s.Header.Content != nil {
				fmt.Fprintf(&b, "~%s", s.Header.Content)
			}
		case CondSessionDescription:
			fmt.Fprintf(&b, "SDP=%s", s.SessionDesc.Line)
			if s.SessionDesc.Content != nil {
				fmt.Fprintf(&b, "~%s", s.SessionDesc.Content)
			}
		}
	}
	return b.String()
}

func describeAll(ifcs []IFC) []string {
	var out []string
	for _, f := range ifcs {
		out = append(out, describe(f))
	}
	return out
}

func errorStrings(errs []error) []string {
	var out []string
	for _, e := range errs {
		out = append(out, e.Error())
	}
	return out
}
