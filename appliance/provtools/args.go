package provtools

import (
	"fmt"
	"strconv"
	"strings"
)

// flagSpec declares one option: its names (e.g. "-k", "--keep-going") and
// whether it takes a value.
type flagSpec struct {
	names []string
	value bool
}

// parsed holds a command line: options by their first name, and the
// positional arguments. Options may come anywhere, as with Clearwater's
// argparse tools.
type parsed struct {
	flags map[string]string
	pos   []string
}

func (p parsed) has(name string) bool   { _, ok := p.flags[name]; return ok }
func (p parsed) get(name string) string { return p.flags[name] }

func parseArgs(args []string, specs ...flagSpec) (parsed, error) {
	p := parsed{flags: map[string]string{}}
	lookup := map[string]flagSpec{}
	for _, s := range specs {
		for _, n := range s.names {
			lookup[n] = s
		}
	}
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			p.pos = append(p.pos, args[i+1:]...)
			break
		}
		if !strings.HasPrefix(a, "-") || a == "-" || isNumberArg(a) {
			p.pos = append(p.pos, a)
			continue
		}
		name, val, hasVal := strings.Cut(a, "=")
		s, ok := lookup[name]
		if !ok {
			return p, fmt.Errorf("unknown option %s", name)
		}
		key := s.names[0]
		switch {
		case s.value && hasVal:
			p.flags[key] = val
		case s.value:
			if i+1 >= len(args) {
				return p, fmt.Errorf("option %s needs a value", name)
			}
			i++
			p.flags[key] = args[i]
		case hasVal:
			return p, fmt.Errorf("option %s takes no value", name)
		default:
			p.flags[key] = ""
		}
	}
	return p, nil
}

// isNumberArg lets a negative-looking number through as an argument.
func isNumberArg(a string) bool {
	_, err := strconv.ParseFloat(a, 64)
	return err == nil
}

// maxRange bounds one number range, as a guard against typos.
const maxRange = 1_000_000

// expandRange turns "<dn>" or "<dn>..<dn>" into the directory numbers it
// covers, keeping the first number's width (leading zeros) and a leading +.
func expandRange(arg string) ([]string, error) {
	first, last, isRange := strings.Cut(arg, "..")
	if !isRange {
		last = first
	}
	plus := strings.HasPrefix(first, "+")
	if strings.HasPrefix(last, "+") != plus {
		return nil, fmt.Errorf("number range %q: both ends must have a + or neither", arg)
	}
	a, b := strings.TrimPrefix(first, "+"), strings.TrimPrefix(last, "+")
	lo, err1 := strconv.ParseUint(a, 10, 63)
	hi, err2 := strconv.ParseUint(b, 10, 63)
	if err1 != nil || err2 != nil || a == "" || b == "" {
		if !isRange {
			return []string{arg}, nil // a user name rather than a number
		}
		return nil, fmt.Errorf("number range %q: ends must be numbers", arg)
	}
	if hi < lo {
		return nil, fmt.Errorf("number range %q runs backwards", arg)
	}
	if hi-lo >= maxRange {
		return nil, fmt.Errorf("number range %q covers more than %d numbers; use users import", arg, maxRange)
	}
	prefix := ""
	if plus {
		prefix = "+"
	}
	out := make([]string, 0, hi-lo+1)
	for n := lo; n <= hi; n++ {
		out = append(out, prefix+fmt.Sprintf("%0*d", len(a), n))
	}
	return out, nil
}
