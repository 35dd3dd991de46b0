package homer

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Marshal writes s as a simservs document, for writers of settings such as
// the portal. The document states every setting explicitly (defaults
// included), so Parse(Marshal(s)) gives back s. Marshal validates what it
// writes and fails rather than produce a document Parse would refuse.
//
// Content the view does not hold is not written: <extensions> and
// extension elements in rules. A rule with Unsupported conditions cannot be
// written, since dropping them would make a rule that never applied start
// applying.
func (s *Simservs) Marshal() ([]byte, error) {
	if s == nil {
		return nil, errors.New("homer: marshal: nil document")
	}
	if err := s.writable(); err != nil {
		return nil, fmt.Errorf("homer: marshal: %w", err)
	}
	w := &writer{}
	w.line(0, `<?xml version="1.0" encoding="UTF-8"?>`)
	w.line(0, `<simservs xmlns="`+NamespaceSimservs+`" xmlns:cp="`+NamespaceCommonPolicy+`">`)
	w.plain(svcOIP, s.OIP)
	w.restriction(svcOIR, s.OIR)
	w.plain(svcTIP, s.TIP)
	w.restriction(svcTIR, s.TIR)
	w.plain(svcCW, s.CommunicationWaiting)
	if d := s.Diversion; d != nil {
		w.line(1, `<`+svcCDIV+` active="`+strconv.FormatBool(d.Active)+`">`)
		if d.NoReplyTimer != 0 {
			w.line(2, "<NoReplyTimer>"+strconv.Itoa(d.NoReplyTimer)+"</NoReplyTimer>")
		}
		w.ruleset(len(d.Rules), func(i int) {
			r := &d.Rules[i]
			w.rule(r.ID, &r.Conditions, func() {
				f := &r.ForwardTo
				w.line(5, "<forward-to>")
				w.line(6, "<target>"+esc(f.Target)+"</target>")
				w.boolElem(6, "notify-caller", f.NotifyCaller)
				w.boolElem(6, "reveal-identity-to-caller", f.RevealIdentityToCaller)
				w.boolElem(6, "reveal-served-user-identity-to-caller", f.RevealServedUserIdentityToCaller)
				w.boolElem(6, "notify-served-user", f.NotifyServedUser)
				w.boolElem(6, "notify-served-user-on-outbound-call", f.NotifyServedUserOnOutboundCall)
				w.boolElem(6, "reveal-identity-to-target", f.RevealIdentityToTarget)
				w.line(5, "</forward-to>")
				if r.NoReplyTimer != 0 {
					w.line(5, "<NoReplyTimer>"+strconv.Itoa(r.NoReplyTimer)+"</NoReplyTimer>")
				}
			})
		})
		w.line(1, `</`+svcCDIV+`>`)
	}
	w.barring(svcICB, s.IncomingBarring)
	w.barring(svcOCB, s.OutgoingBarring)
	w.line(0, `</simservs>`)

	doc := w.buf.Bytes()
	if _, err := Parse(doc); err != nil {
		return nil, fmt.Errorf("homer: marshal: %w", err)
	}
	return doc, nil
}

// writable refuses rules whose Unsupported conditions Marshal would drop.
func (s *Simservs) writable() error {
	check := func(svc, id string, c *Conditions) error {
		if len(c.Unsupported) > 0 {
			return fmt.Errorf("%s: rule %q has conditions that cannot be written: %s", svc, id, strings.Join(c.Unsupported, ", "))
		}
		return nil
	}
	if d := s.Diversion; d != nil {
		for i := range d.Rules {
			if err := check(svcCDIV, d.Rules[i].ID, &d.Rules[i].Conditions); err != nil {
				return err
			}
		}
	}
	for _, b := range []struct {
		svc string
		b   *Barring
	}{{svcICB, s.IncomingBarring}, {svcOCB, s.OutgoingBarring}} {
		if b.b == nil {
			continue
		}
		for i := range b.b.Rules {
			if err := check(b.svc, b.b.Rules[i].ID, &b.b.Rules[i].Conditions); err != nil {
				return err
			}
		}
	}
	return nil
}

// writer builds an indented document.
type writer struct {
	buf bytes.Buffer
}

func (w *writer) line(depth int, s string) {
	for range depth {
		w.buf.WriteString("  ")
	}
	w.buf.WriteString(s)
	w.buf.WriteByte('\n')
}

func (w *writer) boolElem(depth int, name string, v bool) {
	w.line(depth, "<"+name+">"+strconv.FormatBool(v)+"</"+name+">")
}

func (w *writer) plain(name string, s *Service) {
	if s != nil {
		w.line(1, `<`+name+` active="`+strconv.FormatBool(s.Active)+`"/>`)
	}
}

func (w *writer) restriction(name string, r *Restriction) {
	if r == nil {
		return
	}
	behaviour := "presentation-not-restricted"
	if r.Restricted {
		behaviour = "presentation-restricted"
	}
	w.line(1, `<`+name+` active="`+strconv.FormatBool(r.Active)+`">`)
	w.line(2, "<default-behaviour>"+behaviour+"</default-behaviour>")
	w.line(1, `</`+name+`>`)
}

func (w *writer) barring(name string, b *Barring) {
	if b == nil {
		return
	}
	w.line(1, `<`+name+` active="`+strconv.FormatBool(b.Active)+`">`)
	w.ruleset(len(b.Rules), func(i int) {
		r := &b.Rules[i]
		w.rule(r.ID, &r.Conditions, func() { w.boolElem(5, "allow", r.Allow) })
	})
	w.line(1, `</`+name+`>`)
}

func (w *writer) ruleset(n int, rule func(i int)) {
	if n == 0 {
		w.line(2, "<cp:ruleset/>")
		return
	}
	w.line(2, "<cp:ruleset>")
	for i := range n {
		rule(i)
	}
	w.line(2, "</cp:ruleset>")
}

func (w *writer) rule(id string, c *Conditions, actions func()) {
	w.line(3, `<cp:rule id="`+esc(id)+`">`)
	w.conditions(c)
	w.line(4, "<cp:actions>")
	actions()
	w.line(4, "</cp:actions>")
	w.line(3, "</cp:rule>")
}

func (w *writer) conditions(c *Conditions) {
	var lines []string
	if id := c.Identity; id != nil {
		lines = append(lines, "<cp:identity>")
		for _, one := range id.One {
			lines = append(lines, `  <cp:one id="`+esc(one)+`"/>`)
		}
		for _, m := range id.Many {
			open := "  <cp:many"
			if m.Domain != "" {
				open += ` domain="` + esc(m.Domain) + `"`
			}
			if len(m.Except) == 0 {
				lines = append(lines, open+"/>")
				continue
			}
			lines = append(lines, open+">")
			for _, ex := range m.Except {
				e := "    <cp:except"
				if ex.Domain != "" {
					e += ` domain="` + esc(ex.Domain) + `"`
				}
				if ex.ID != "" {
					e += ` id="` + esc(ex.ID) + `"`
				}
				lines = append(lines, e+"/>")
			}
			lines = append(lines, "  </cp:many>")
		}
		lines = append(lines, "</cp:identity>")
	}
	for _, v := range c.Sphere {
		lines = append(lines, `<cp:sphere value="`+esc(v)+`"/>`)
	}
	if len(c.Validity) > 0 {
		lines = append(lines, "<cp:validity>")
		for _, iv := range c.Validity {
			lines = append(lines,
				"  <cp:from>"+iv.From.UTC().Format(time.RFC3339Nano)+"</cp:from>",
				"  <cp:until>"+iv.Until.UTC().Format(time.RFC3339Nano)+"</cp:until>")
		}
		lines = append(lines, "</cp:validity>")
	}
	for _, f := range []struct {
		set  bool
		name string
	}{
		{c.RuleDeactivated, "rule-deactivated"},
		{c.Busy, "busy"},
		{c.NoAnswer, "no-answer"},
		{c.NotReachable, "not-reachable"},
		{c.NotRegistered, "not-registered"},
		{c.NotLoggedIn, "not-logged-in"},
		{c.Anonymous, "anonymous"},
		{c.CommunicationDiverted, "communication-diverted"},
		{c.Roaming, "roaming"},
		{c.International, "international"},
		{c.InternationalExHC, "international-exHC"},
	} {
		if f.set {
			lines = append(lines, "<"+f.name+"/>")
		}
	}
	for _, m := range c.Media {
		lines = append(lines, "<media>"+esc(m)+"</media>")
	}
	for _, p := range c.PresenceStatus {
		lines = append(lines, "<presence-status>"+esc(p)+"</presence-status>")
	}
	if len(lines) == 0 {
		w.line(4, "<cp:conditions/>")
		return
	}
	w.line(4, "<cp:conditions>")
	for _, l := range lines {
		w.line(5, l)
	}
	w.line(4, "</cp:conditions>")
}

// esc escapes text for element content and double-quoted attributes.
func esc(s string) string {
	var b strings.Builder
	xml.EscapeText(&b, []byte(s))
	return b.String()
}
