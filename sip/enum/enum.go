package enum

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"

	"stillwater/sip/resolve"
)

// Defaults.
const (
	// DefaultSuffix is the ENUM domain suffix (enum_suffix) of RFC 3761.
	DefaultSuffix = "e164.arpa"
	// DefaultTimeout is the base per-server timeout; each attempt waits a
	// random time between it and twice it (Clearwater: 500–1000 ms).
	DefaultTimeout = 500 * time.Millisecond
	// DefaultMaxQueries bounds the DNS queries of one translation, so that
	// non-terminal rules cannot loop (Clearwater's limit).
	DefaultMaxQueries = 5
	// MaxServers is how many ENUM servers enum_server may list.
	MaxServers = 3
)

// Errors wrapped by Translate and New.
var (
	// ErrNotFound: the number has no translation (no records, no matching
	// rule or number block).
	ErrNotFound = errors.New("ENUM: no translation for number")
	// ErrUnavailable: every ENUM server failed (SERVFAIL, REFUSED) or timed out.
	ErrUnavailable = errors.New("ENUM: servers unavailable")
	// ErrLoop: non-terminal rules did not reach a terminal one in time.
	ErrLoop = errors.New("ENUM: non-terminal rules loop")
	// ErrInvalidAnswer: the translation is not a usable SIP or tel URI.
	ErrInvalidAnswer = errors.New("ENUM: invalid answer")
	// ErrNotNumber: the input is not a telephone number.
	ErrNotNumber = errors.New("ENUM: not a telephone number")
	// ErrNotGlobal: the number is local and enforce_global_only_lookups is set.
	ErrNotGlobal = errors.New("ENUM: lookup of a local number not allowed")
	// ErrNotConfigured: neither an ENUM server nor an enum.json was given.
	ErrNotConfigured = errors.New("ENUM: no ENUM server or enum.json configured")
)

// NAPTRLookuper answers NAPTR queries; *resolve.Resolver implements it. An
// error wrapping resolve.ErrNotFound means the name has no NAPTR records;
// any other error means the server could not answer.
type NAPTRLookuper interface {
	LookupNAPTR(ctx context.Context, name string) ([]resolve.NAPTR, error)
}

// Options configures a Service.
type Options struct {
	// Resolver, if set, is asked first; give it alone when one resolver
	// already fails over across all ENUM servers itself.
	Resolver NAPTRLookuper
	// Servers are the ENUM servers (enum_server) in failover order, one
	// lookuper each (see NewServers): the first is always asked first, and
	// a SERVFAIL or timeout passes the query to the next. At most three,
	// counting Resolver.
	Servers []NAPTRLookuper
	// Suffix is appended to the reversed digits (enum_suffix). Default
	// e164.arpa.
	Suffix string
	// File is enum.json content (enum_file), used only when no server is
	// configured.
	File []byte
	// GlobalOnly refuses numbers without a leading '+'
	// (enforce_global_only_lookups).
	GlobalOnly bool
	// OverrideNPDI makes number portability data from ENUM replace the
	// number even when the number already carries npdi (override_npdi).
	OverrideNPDI bool
	// Timeout is the base wait for one server; each attempt waits a random
	// duration in [Timeout, 2×Timeout). Default 500 ms.
	Timeout time.Duration
	// MaxQueries bounds DNS queries per translation. Default 5.
	MaxQueries int
	// Rand draws the timeout jitter. Default: the runtime's source.
	Rand   rand.Source
	Logger *slog.Logger
}

// Result is a successful translation.
type Result struct {
	// URI is the translated URI: usually sip:, possibly tel: for
	// E2U+pstn:tel answers.
	URI string
	// RoutingNumber and NPDI are the number portability data to route on:
	// from the answer, or from the number itself when NPIgnored.
	RoutingNumber string
	NPDI          bool
	// Terminal reports that the translation ended on a terminal rule
	// (flag "u", or an enum.json block). Translate follows non-terminal
	// rules itself, so every Result it returns has it set; a chain that
	// does not end fails with ErrLoop instead.
	Terminal bool
	// Queries is how many DNS queries the translation took (0 for enum.json).
	Queries int
	// NPIgnored reports that the answer was number portability data for a
	// number already marked npdi, and override_npdi is off: the caller
	// keeps its Request-URI and routes on the number's own rn.
	NPIgnored bool
}

// Service translates numbers. It is safe for concurrent use.
type Service struct {
	servers      []NAPTRLookuper
	file         []fileRule
	suffix       string
	globalOnly   bool
	overrideNPDI bool
	timeout      time.Duration
	maxQueries   int
	log          *slog.Logger

	randMu sync.Mutex
	rnd    *rand.Rand

	// substs caches compiled NAPTR regexps: the same few records answer
	// most numbers, and compiling dominates a cached lookup.
	substMu sync.Mutex
	substs  map[string]*subst
}

// substCacheSize bounds the compiled-regexp cache; it is emptied when full.
const substCacheSize = 4096

// runtimeSource draws from the runtime's goroutine-safe generator.
type runtimeSource struct{}

func (runtimeSource) Uint64() uint64 { return rand.Uint64() }

// New builds a Service from opts. It fails on an invalid enum.json, more
// than three servers, or when there is neither a server nor a file.
func New(opts Options) (*Service, error) {
	s := &Service{
		suffix:       strings.Trim(strings.ToLower(opts.Suffix), "."),
		globalOnly:   opts.GlobalOnly,
		overrideNPDI: opts.OverrideNPDI,
		timeout:      opts.Timeout,
		maxQueries:   opts.MaxQueries,
		log:          opts.Logger,
	}
	if opts.Resolver != nil {
		s.servers = append(s.servers, opts.Resolver)
	}
	for i, srv := range opts.Servers {
		if srv == nil {
			return nil, fmt.Errorf("enum: Servers[%d] is nil", i)
		}
		s.servers = append(s.servers, srv)
	}
	if len(s.servers) > MaxServers {
		return nil, fmt.Errorf("enum: %d ENUM servers configured; at most %d", len(s.servers), MaxServers)
	}
	if s.suffix == "" {
		s.suffix = DefaultSuffix
	}
	if s.timeout <= 0 {
		s.timeout = DefaultTimeout
	}
	if s.maxQueries <= 0 {
		s.maxQueries = DefaultMaxQueries
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	src := opts.Rand
	if src == nil {
		src = runtimeSource{}
	}
	s.rnd = rand.New(src)

	switch {
	case len(s.servers) > 0:
		if len(opts.File) > 0 {
			s.log.Info("enum: ENUM servers configured; enum.json ignored")
		}
	case len(opts.File) > 0:
		rules, err := parseEnumFile(opts.File)
		if err != nil {
			return nil, err
		}
		sortLongestFirst(rules)
		s.file = rules
	default:
		return nil, ErrNotConfigured
	}
	return s, nil
}

// Translate maps a telephone number to a URI. number is a dial string with
// an optional leading '+', visual separators and RFC 4694 parameters, e.g.
// "+1 650-555-1234;npdi" (see NumberFromURI).
func (s *Service) Translate(ctx context.Context, number string) (Result, error) {
	n, err := parseNumber(number)
	if err != nil {
		return Result{}, err
	}
	if s.globalOnly && !strings.HasPrefix(n.aus, "+") {
		return Result{}, fmt.Errorf("%w: %q", ErrNotGlobal, number)
	}
	var uri string
	var queries int
	if s.servers != nil {
		uri, queries, err = s.viaDNS(ctx, n.aus)
	} else {
		uri, err = s.viaFile(n.aus)
	}
	if err != nil {
		return Result{}, err
	}
	r, err := s.result(n, uri)
	if err != nil {
		return Result{}, err
	}
	r.Queries = queries
	return r, nil
}

// result validates the translated URI and settles number portability.
func (s *Service) result(n number, uri string) (Result, error) {
	var u sip.Uri
	if err := sip.ParseUri(uri, &u); err != nil {
		return Result{}, fmt.Errorf("%w: %q for %s: %w", ErrInvalidAnswer, uri, n.aus, err)
	}
	switch strings.ToLower(u.Scheme) {
	case "sip", "sips":
		if u.Host == "" {
			return Result{}, fmt.Errorf("%w: %q for %s has no host", ErrInvalidAnswer, uri, n.aus)
		}
	case "tel":
		if digits, _, _ := strings.Cut(u.Raw(), ";"); digits == "" {
			return Result{}, fmt.Errorf("%w: %q for %s has no number", ErrInvalidAnswer, uri, n.aus)
		}
	default:
		return Result{}, fmt.Errorf("%w: %q for %s is neither a SIP nor a tel URI", ErrInvalidAnswer, uri, n.aus)
	}
	r := Result{URI: uri, Terminal: true}
	np := npFromURI(&u)
	if np == (NP{}) {
		return r, nil
	}
	if n.np.NPDI && !s.overrideNPDI {
		// The number was already dipped; its own data stands.
		r.NPIgnored = true
		r.RoutingNumber, r.NPDI = n.np.RoutingNumber, n.np.NPDI
		return r, nil
	}
	r.RoutingNumber, r.NPDI = np.RoutingNumber, np.NPDI
	return r, nil
}

// viaFile applies the enum.json block with the longest matching prefix.
func (s *Service) viaFile(aus string) (string, error) {
	for _, r := range s.file {
		if !strings.HasPrefix(aus, r.prefix) {
			continue
		}
		out, ok := r.subst.apply(aus)
		if !ok {
			return "", fmt.Errorf("%w: %s: regex of number block %q does not match", ErrNotFound, aus, r.Name)
		}
		return out, nil
	}
	return "", fmt.Errorf("%w: %s matches no number block", ErrNotFound, aus)
}

// viaDNS runs the ENUM algorithm of RFC 3761 §2.4: query the number's
// domain, apply the first matching rule (by order, then preference) to the
// Application Unique String, and follow non-terminal rules.
func (s *Service) viaDNS(ctx context.Context, aus string) (string, int, error) {
	name := domain(aus, s.suffix)
	seen := make(map[string]bool, s.maxQueries)
	for q := 1; q <= s.maxQueries; q++ {
		if seen[name] {
			return "", q - 1, fmt.Errorf("%w: %s: %s queried twice", ErrLoop, aus, name)
		}
		seen[name] = true
		recs, err := s.lookup(ctx, name)
		if err != nil {
			return "", q, err
		}
		rule, out, ok := s.match(recs, aus, name)
		if !ok {
			return "", q, fmt.Errorf("%w: %s: no usable NAPTR rule at %s", ErrNotFound, aus, name)
		}
		if rule.terminal {
			return out, q, nil
		}
		next, err := s.nextName(rule, out)
		if err != nil {
			return "", q, fmt.Errorf("%w: %s: non-terminal rule at %s: %w", ErrInvalidAnswer, aus, name, err)
		}
		s.log.Debug("enum: following non-terminal rule", "number", aus, "from", name, "to", next)
		name = next
	}
	return "", s.maxQueries, fmt.Errorf("%w: %s: no terminal rule within %d queries", ErrLoop, aus, s.maxQueries)
}

// rule is a usable ENUM NAPTR record.
type rule struct {
	order, pref uint16
	terminal    bool
	subst       *subst // nil: the replacement field names the next domain
	replacement string
}

// match returns the first rule, by order then preference, whose regexp
// matches aus, with the rewritten string.
func (s *Service) match(recs []resolve.NAPTR, aus, name string) (rule, string, bool) {
	rules := make([]rule, 0, len(recs))
	for _, rec := range recs {
		if !isENUMService(rec.Service) {
			continue
		}
		r := rule{order: rec.Order, pref: rec.Preference, replacement: rec.Replacement}
		switch strings.ToLower(rec.Flags) {
		case "u":
			r.terminal = true
		case "":
		default:
			// RFC 3761 §2.4.1: a record with unknown flags is ignored.
			s.log.Warn("enum: NAPTR record with unknown flags ignored", "name", name, "flags", rec.Flags)
			continue
		}
		if rec.Regexp != "" {
			sub, err := s.compile(rec.Regexp)
			if err != nil {
				s.log.Warn("enum: NAPTR record with bad regexp ignored", "name", name, "err", err)
				continue
			}
			r.subst = sub
		} else if r.terminal || rec.Replacement == "" {
			// A terminal ENUM rule needs a regexp to produce a URI.
			continue
		}
		rules = append(rules, r)
	}
	slices.SortStableFunc(rules, func(a, b rule) int {
		if a.order != b.order {
			return int(a.order) - int(b.order)
		}
		return int(a.pref) - int(b.pref)
	})
	for _, r := range rules {
		if r.subst == nil {
			return r, "", true
		}
		if out, ok := r.subst.apply(aus); ok {
			return r, out, true
		}
	}
	return rule{}, "", false
}

// compile returns the compiled substitution expression, from the cache
// when it was seen before.
func (s *Service) compile(expr string) (*subst, error) {
	s.substMu.Lock()
	sub := s.substs[expr]
	s.substMu.Unlock()
	if sub != nil {
		return sub, nil
	}
	sub, err := parseSubst(expr)
	if err != nil {
		return nil, err
	}
	s.substMu.Lock()
	if s.substs == nil || len(s.substs) >= substCacheSize {
		s.substs = make(map[string]*subst)
	}
	s.substs[expr] = sub
	s.substMu.Unlock()
	return sub, nil
}

// nextName is the domain a non-terminal rule points at: its replacement
// field, or the rule's output read as a number (converted to its ENUM
// domain) or as a domain name.
func (s *Service) nextName(r rule, out string) (string, error) {
	if r.subst == nil {
		return r.replacement, nil
	}
	key := strings.TrimSuffix(stripVisual(out), ".")
	if body := strings.TrimPrefix(key, "+"); body != "" && strings.Trim(body, "0123456789") == "" {
		return domain(key, s.suffix), nil
	}
	if key == "" || strings.ContainsAny(key, ":@;/ ") {
		return "", fmt.Errorf("output %q is neither a number nor a domain", out)
	}
	return strings.ToLower(key), nil
}

// isENUMService accepts E2U+sip, E2U+pstn:sip and E2U+pstn:tel (RFC 3761,
// RFC 4769), also as one of several enumservices ("E2U+sip+voice").
func isENUMService(svc string) bool {
	parts := strings.Split(strings.ToLower(strings.TrimSpace(svc)), "+")
	if len(parts) < 2 || parts[0] != "e2u" {
		return false
	}
	for _, p := range parts[1:] {
		switch p {
		case "sip", "pstn:sip", "pstn:tel":
			return true
		}
	}
	return false
}

// lookup asks the servers in order; NXDOMAIN/NODATA is an answer, a server
// failure or timeout passes the query on.
func (s *Service) lookup(ctx context.Context, name string) ([]resolve.NAPTR, error) {
	var errs []error
	for i, srv := range s.servers {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("%w: %s: %w", ErrUnavailable, name, err)
		}
		actx, cancel := context.WithTimeout(ctx, s.attemptTimeout())
		recs, err := srv.LookupNAPTR(actx, name)
		cancel()
		switch {
		case err == nil:
			return recs, nil
		case errors.Is(err, resolve.ErrNotFound):
			return nil, fmt.Errorf("%w: %s: %w", ErrNotFound, name, err)
		}
		s.log.Warn("enum: ENUM server failed", "server", i, "name", name, "err", err)
		errs = append(errs, fmt.Errorf("server %d: %w", i, err))
	}
	return nil, fmt.Errorf("%w: %s: %w", ErrUnavailable, name, errors.Join(errs...))
}

func (s *Service) attemptTimeout() time.Duration {
	s.randMu.Lock()
	defer s.randMu.Unlock()
	return s.timeout + time.Duration(s.rnd.Int64N(int64(s.timeout)))
}
