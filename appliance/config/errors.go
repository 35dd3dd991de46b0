package config

import (
	"fmt"
	"strings"
)

// Error is one problem found in a configuration file. The errors returned by
// this package join one or more of them (errors.Join); unwrap the joined
// error, or use errors.As, to get at the fields.
type Error struct {
	File   string // the file as named to the user
	Line   int    // 1-based; 0 when the problem is not on one line
	Option string // name=value files: the option at fault, if known
	Path   string // JSON and XML files: where in the document
	Msg    string
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	b.WriteString(": ")
	if e.Option != "" {
		fmt.Fprintf(&b, "option %q: ", e.Option)
	}
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}
