package enum

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
)

// Block is one entry of Clearwater's enum.json: numbers starting with
// Prefix are translated by applying Regex to the whole number.
type Block struct {
	Name   string `json:"name"`
	Prefix string `json:"prefix"`
	Regex  string `json:"regex"`
}

// fileRule is a Block ready for matching.
type fileRule struct {
	Block
	prefix string // visual separators removed
	subst  *subst
}

// ParseEnumJSON parses and validates enum.json content:
// {"number_blocks":[{"name":...,"prefix":"+1650","regex":"!(^.*$)!sip:\\1@example.com!"}]}.
// Errors name the block and field at fault.
func ParseEnumJSON(data []byte) ([]Block, error) {
	rules, err := parseEnumFile(data)
	if err != nil {
		return nil, err
	}
	out := make([]Block, len(rules))
	for i, r := range rules {
		out[i] = r.Block
	}
	return out, nil
}

func parseEnumFile(data []byte) ([]fileRule, error) {
	var doc struct {
		NumberBlocks *[]struct {
			Name   *string `json:"name"`
			Prefix *string `json:"prefix"`
			Regex  *string `json:"regex"`
		} `json:"number_blocks"`
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("enum.json: %w", err)
	}
	if dec.More() {
		return nil, fmt.Errorf("enum.json: trailing data after the top-level object")
	}
	if doc.NumberBlocks == nil {
		return nil, fmt.Errorf("enum.json: missing \"number_blocks\" array")
	}
	rules := make([]fileRule, 0, len(*doc.NumberBlocks))
	seen := make(map[string]string)
	for i, nb := range *doc.NumberBlocks {
		where := fmt.Sprintf("enum.json: number_blocks[%d]", i)
		if nb.Name != nil {
			where += fmt.Sprintf(" (%q)", *nb.Name)
		}
		if nb.Prefix == nil {
			return nil, fmt.Errorf("%s: missing \"prefix\"", where)
		}
		if nb.Regex == nil {
			return nil, fmt.Errorf("%s: missing \"regex\"", where)
		}
		prefix := stripVisual(*nb.Prefix)
		if !isPrefix(prefix) {
			return nil, fmt.Errorf("%s: \"prefix\" %q is not digits with an optional leading '+'", where, *nb.Prefix)
		}
		s, err := parseSubst(*nb.Regex)
		if err != nil {
			return nil, fmt.Errorf("%s: \"regex\": %w", where, err)
		}
		if first, dup := seen[prefix]; dup {
			return nil, fmt.Errorf("%s: \"prefix\" %q repeats %s", where, *nb.Prefix, first)
		}
		seen[prefix] = where
		r := fileRule{prefix: prefix, subst: s}
		r.Prefix, r.Regex = *nb.Prefix, *nb.Regex
		if nb.Name != nil {
			r.Name = *nb.Name
		}
		rules = append(rules, r)
	}
	return rules, nil
}

// isPrefix accepts "", "+", digits and "+" followed by digits.
func isPrefix(p string) bool {
	for i := 0; i < len(p); i++ {
		if c := p[i]; !(c >= '0' && c <= '9' || c == '+' && i == 0) {
			return false
		}
	}
	return true
}

// sortLongestFirst orders rules so that the first whose prefix matches is
// the longest match.
func sortLongestFirst(rules []fileRule) {
	slices.SortStableFunc(rules, func(a, b fileRule) int { return len(b.prefix) - len(a.prefix) })
}
