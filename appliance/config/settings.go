package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
)

// Setting is one name=value line.
type Setting struct {
	Name  string
	Value string // unquoted
	File  string // the file as named to Parse
	Line  int
}

// Settings are the lines of one file in file order. As in bash, a later line
// for the same name overrides an earlier one.
type Settings []Setting

// Get returns the last setting of name.
func (s Settings) Get(name string) (Setting, bool) {
	for i := len(s) - 1; i >= 0; i-- {
		if s[i].Name == name {
			return s[i], true
		}
	}
	return Setting{}, false
}

// Parse reads one name=value file. name is how the file is shown in errors;
// its base name (local_config, shared_config or user_settings) decides which
// options it may set, and any other base name may set every option.
//
// The syntax is the subset of bash Clearwater's files use: blank lines,
// # comments, and name=value with an optional leading "export ". The value
// may be quoted with '...' or "..." (inside "...", \ escapes ", \, $ and `);
// unquoted, it ends at whitespace, after which only a comment may follow.
// Shell expansion ($, `) and unquoted shell metacharacters are refused, as
// bash would give them a meaning this package does not.
//
// Every problem is reported, joined into the returned error; the returned
// Settings hold the lines that were valid.
func Parse(name string, r io.Reader) (Settings, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	kind := Files(0)
	for f, n := range fileNames {
		if filepath.Base(name) == n {
			kind = f
		}
	}
	return parse(kind, name, data)
}

// ParseShared checks an uploaded shared_config, which is shown in errors as
// "shared_config".
func ParseShared(content []byte) error {
	_, err := parse(SharedConfig, "shared_config", content)
	return err
}

// parse reads a file of the given kind (0 when unknown).
func parse(kind Files, file string, data []byte) (Settings, error) {
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	var out Settings
	var errs []error
	for i, line := range strings.Split(string(data), "\n") {
		fail := func(option, msg string) {
			errs = append(errs, &Error{File: file, Line: i + 1, Option: option, Msg: msg})
		}
		name, value, msg := lexLine(strings.TrimSuffix(line, "\r"))
		switch {
		case name == "" && msg == "":
			continue // blank or comment
		case msg != "":
			fail(name, msg)
			continue
		}
		o, ok := table[name]
		switch {
		case !ok:
			fail(name, "unknown option")
		case kind != 0 && o.Files&kind == 0:
			fail(name, "may only be set in "+o.Files.String())
		default:
			if msg := o.check(value); msg != "" {
				fail(name, msg)
				continue
			}
			out = append(out, Setting{Name: name, Value: value, File: file, Line: i + 1})
		}
	}
	return out, errors.Join(errs...)
}

// lexLine splits one line into name and unquoted value. It returns an empty
// name and message for a blank or comment line, and a message saying what
// is wrong with a malformed one (with the name, if it got that far).
func lexLine(line string) (name, value, msg string) {
	s := strings.TrimLeft(line, " \t")
	if s == "" || s[0] == '#' {
		return "", "", ""
	}
	if rest, ok := strings.CutPrefix(s, "export"); ok && rest != "" && (rest[0] == ' ' || rest[0] == '\t') {
		s = strings.TrimLeft(rest, " \t")
	}
	n := 0
	for n < len(s) && (s[n] == '_' || isAlnum(s[n]) && (n > 0 || s[n] > '9')) {
		n++
	}
	name, s = s[:n], s[n:]
	switch {
	case name == "":
		return "", "", "malformed line: expected name=value"
	case strings.HasPrefix(strings.TrimLeft(s, " \t"), "=") && s[0] != '=':
		return name, "", `malformed line: no spaces are allowed before "="`
	case s == "" || s[0] != '=':
		return "", "", "malformed line: expected name=value"
	}
	s = s[1:]

	var v strings.Builder
	for len(s) > 0 {
		c := s[0]
		switch {
		case c == ' ' || c == '\t':
			rest := strings.TrimLeft(s, " \t")
			if rest != "" && rest[0] != '#' {
				return name, "", "unquoted space in value (quote the value)"
			}
			return name, v.String(), ""
		case c == '\'':
			end := strings.IndexByte(s[1:], '\'')
			if end < 0 {
				return name, "", "unterminated single quote"
			}
			v.WriteString(s[1 : 1+end])
			s = s[2+end:]
		case c == '"':
			i := 1
			for ; i < len(s) && s[i] != '"'; i++ {
				switch s[i] {
				case '\\':
					if i+1 < len(s) && strings.IndexByte("\"\\$`", s[i+1]) >= 0 {
						i++
					}
				case '$', '`':
					return name, "", "shell expansion (" + string(s[i]) + ") is not supported"
				}
				v.WriteByte(s[i])
			}
			if i == len(s) {
				return name, "", "unterminated double quote"
			}
			s = s[i+1:]
		case c == '\\':
			if len(s) == 1 {
				return name, "", "line continuation is not supported"
			}
			v.WriteByte(s[1])
			s = s[2:]
		case c == '$' || c == '`':
			return name, "", "shell expansion (" + string(c) + ") is not supported"
		case strings.IndexByte(";&|<>()", c) >= 0:
			return name, "", fmt.Sprintf("unquoted %q in value (quote the value)", string(c))
		default:
			v.WriteByte(c)
			s = s[1:]
		}
	}
	return name, v.String(), ""
}
