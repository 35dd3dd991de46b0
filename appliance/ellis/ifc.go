package ellis

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strings"
)

// defaultIFC is a new line's service profile: INVITEs go to the built-in
// MMTEL AS both when the line calls (originating, registered or not) and
// when it is called (terminating, registered or not). In CNF the SPTs of a
// group are ORed and the groups ANDed: INVITE and one of the session cases.
func defaultIFC(homeDomain string) string {
	return string(render(defaultIFCDoc(homeDomain), "", nil, true))
}

func defaultIFCDoc(homeDomain string) *elem {
	return el("", "ServiceProfile", mmtelIFCs(homeDomain)...)
}

func mmtelIFCs(homeDomain string) []*elem {
	ifc := func(priority string, cases ...string) *elem {
		tp := el("", "TriggerPoint",
			el("", "ConditionTypeCNF").text("1"),
			spt("0", el("", "Method").text("INVITE")))
		for _, c := range cases {
			tp.Children = append(tp.Children, spt("1", el("", "SessionCase").text(c)))
		}
		return el("", "InitialFilterCriteria",
			el("", "Priority").text(priority),
			tp,
			el("", "ApplicationServer",
				el("", "ServerName").text("sip:mmtel."+homeDomain),
				el("", "DefaultHandling").text("0")))
	}
	// Session cases (TS 29.228): 0 originating, 1 terminating registered,
	// 2 terminating unregistered, 3 originating unregistered.
	return []*elem{ifc("0", "0", "3"), ifc("1", "1", "2")}
}

func spt(group string, cond *elem) *elem {
	return el("", "SPT",
		el("", "ConditionNegated").text("0"),
		el("", "Group").text(group),
		cond)
}

// appServer is one entry of app-servers.json: a name and the iFC elements
// that invoke it.
type appServer struct {
	Name string
	IFCs []*elem
}

// appServers reads app-servers.json (name → iFC XML). Without a path the
// built-in MMTEL AS is offered; a missing file offers nothing.
func (s *Server) appServers() ([]appServer, error) {
	if s.opts.AppServersPath == "" {
		return []appServer{{Name: "MMTEL", IFCs: mmtelIFCs(s.opts.HomeDomain)}}, nil
	}
	data, err := os.ReadFile(s.opts.AppServersPath)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("application servers: %w", err)
	}
	var m map[string]string
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("application servers: %s: %w", s.opts.AppServersPath, err)
	}
	out := make([]appServer, 0, len(m))
	for name, x := range m {
		frag, err := parseXML([]byte("<f>" + x + "</f>"))
		if err != nil {
			return nil, fmt.Errorf("application servers: %s: %q: %w", s.opts.AppServersPath, name, err)
		}
		if len(frag.Children) == 0 {
			return nil, fmt.Errorf("application servers: %s: %q has no XML element", s.opts.AppServersPath, name)
		}
		out = append(out, appServer{Name: name, IFCs: frag.Children})
	}
	slices.SortFunc(out, func(a, b appServer) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// invokes reports whether a service profile holds all of an AS's iFCs.
func (as appServer) invokes(profile *elem) bool {
	for _, want := range as.IFCs {
		if !slices.ContainsFunc(profile.Children, func(c *elem) bool { return c.canonical() == want.canonical() }) {
			return false
		}
	}
	return true
}

// set adds or removes an AS's iFCs, leaving every other element alone, as
// Ellis did.
func (as appServer) set(profile *elem, on bool) {
	for _, want := range as.IFCs {
		w := want.canonical()
		has := slices.ContainsFunc(profile.Children, func(c *elem) bool { return c.canonical() == w })
		switch {
		case on && !has:
			profile.Children = append(profile.Children, want)
		case !on && has:
			profile.Children = slices.DeleteFunc(profile.Children, func(c *elem) bool { return c.canonical() == w })
		}
	}
}
