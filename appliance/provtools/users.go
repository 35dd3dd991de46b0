package provtools

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"stillwater/diameter/hss"
)

const usersUsage = `usage: stillwater users <command> [options] [args]

commands:
  create <dn>[..<dn>] <domain> <password>   create users sip:<dn>@<domain>
         [-k] [--plaintext] [--ifc FILE]
  update <dn>[..<dn>] <domain> [<password>] change passwords and/or iFCs
         [--password PW] [--plaintext] [--ifc FILE] [-k] [-q]
  delete <dn>[..<dn>] <domain> [-f] [-q]     delete users
  display <dn>[..<dn>] <domain> [-k] [-q] [-s]
  list [--full] [--pace N] [-f] [-k]         list every public identity
  import <csv> [--ifc FILE] [--plaintext] [-q] [--batch N] [--workers N]
         bulk-provision a CSV (public id, private id, realm, password);
         re-running it skips what exists

options:
  -k, --keep-going   keep going on errors
  -f, --force        delete: carry on past errors; list: allow a faster pace
  -q, --quiet        update/display: less output; delete: silence forced errors;
                     import: no progress bar
  -s, --short        display one line per user
  --plaintext        store the password in plaintext as well as its digest
  --ifc FILE         iFC document (a ServiceProfile element) for the users
  --hsprov IP:PORT   Homestead-prov to use instead of this node's
`

// Users runs `stillwater users ...` with args (after "users") against the
// Homestead-prov API reached through client. Results go to stdout, errors
// and progress to stderr. It returns an error if any user failed.
func Users(ctx context.Context, args []string, stdout, stderr io.Writer, client *Client) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usersUsage)
		return errors.New("users: no command")
	}
	cmd, rest := args[0], args[1:]
	specs := []flagSpec{
		{names: []string{"-h", "--help"}},
		{names: []string{"-k", "--keep-going"}},
		{names: []string{"-f", "--force"}},
		{names: []string{"-q", "--quiet"}},
		{names: []string{"-s", "--short"}},
		{names: []string{"--plaintext"}},
		{names: []string{"--full"}},
		{names: []string{"--ifc"}, value: true},
		{names: []string{"--password"}, value: true},
		{names: []string{"--pace"}, value: true},
		{names: []string{"--hsprov"}, value: true},
		{names: []string{"--batch"}, value: true},
		{names: []string{"--workers"}, value: true},
	}
	p, err := parseArgs(rest, specs...)
	if err != nil {
		fmt.Fprint(stderr, usersUsage)
		return fmt.Errorf("users %s: %w", cmd, err)
	}
	if p.has("-h") || cmd == "-h" || cmd == "--help" || cmd == "help" {
		fmt.Fprint(stdout, usersUsage)
		return nil
	}
	if p.has("--hsprov") {
		client = NewClient(p.get("--hsprov"))
	}
	if client == nil {
		return errors.New("users: no Homestead-prov address")
	}
	u := &users{c: client, out: stdout, errOut: stderr, p: p}
	switch cmd {
	case "create":
		return u.create(ctx)
	case "update":
		return u.update(ctx)
	case "delete":
		return u.delete(ctx)
	case "display":
		return u.display(ctx)
	case "list":
		return u.list(ctx)
	case "import":
		return u.importCSV(ctx)
	}
	fmt.Fprint(stderr, usersUsage)
	return fmt.Errorf("users: unknown command %q", cmd)
}

type users struct {
	c           *Client
	out, errOut io.Writer
	p           parsed
}

// user is one line: sip:<dn>@<domain> with private identity <dn>@<domain>
// in realm <domain>, as Clearwater's tools name them.
type user struct {
	impu, impi, realm string
}

func (u *users) targets(cmd string, min, max int) ([]user, error) {
	pos := u.p.pos
	if len(pos) < min || len(pos) > max {
		return nil, fmt.Errorf("users %s: want <directory-number>[..<directory-number>] <domain>%s", cmd,
			map[bool]string{true: " <password>", false: ""}[min == 3])
	}
	dns, err := expandRange(pos[0])
	if err != nil {
		return nil, fmt.Errorf("users %s: %w", cmd, err)
	}
	domain := pos[1]
	if domain == "" || strings.ContainsAny(domain, "@:/ ") {
		return nil, fmt.Errorf("users %s: bad domain %q", cmd, domain)
	}
	out := make([]user, len(dns))
	for i, dn := range dns {
		out[i] = user{impu: "sip:" + dn + "@" + domain, impi: dn + "@" + domain, realm: domain}
	}
	return out, nil
}

func (u *users) ifcDoc(domain string) (string, error) {
	file := u.p.get("--ifc")
	if file == "" {
		return hss.DefaultIFC("sip:mmtel." + domain), nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("--ifc: %w", err)
	}
	if _, err := hss.ParseServiceProfile(b); err != nil {
		return "", fmt.Errorf("--ifc %s: %w", file, err)
	}
	return string(b), nil
}

// each runs fn for every user. With keepGoing it reports failures (unless
// quiet) and carries on; strict then still fails the command at the end,
// as -k does, while delete's -f forgives them.
func (u *users) each(list []user, keepGoing, quiet, strict bool, fn func(user) error) error {
	failed := 0
	for _, us := range list {
		if err := fn(us); err != nil {
			if !keepGoing {
				return fmt.Errorf("%s: %w", us.impu, err)
			}
			failed++
			if !quiet {
				fmt.Fprintf(u.errOut, "%s: %v\n", us.impu, err)
			}
		}
	}
	if failed > 0 && strict {
		return fmt.Errorf("%d of %d users failed", failed, len(list))
	}
	return nil
}

func (u *users) privateBody(us user, password string) ([]byte, error) {
	body := map[string]string{"realm": us.realm}
	if u.p.has("--plaintext") {
		body["plaintext_password"] = password
	} else {
		body["digest_ha1"] = hss.DigestHA1(us.impi, us.realm, password)
	}
	return json.Marshal(body)
}

func (u *users) create(ctx context.Context) error {
	list, err := u.targets("create", 3, 3)
	if err != nil {
		return err
	}
	password := u.p.pos[2]
	if password == "" {
		return errors.New("users create: empty password")
	}
	ifc, err := u.ifcDoc(list[0].realm)
	if err != nil {
		return fmt.Errorf("users create: %w", err)
	}
	return u.each(list, u.p.has("-k"), false, true, func(us user) error {
		if err := u.createOne(ctx, us, password, ifc); err != nil {
			return err
		}
		fmt.Fprintf(u.out, "Created user %s\n", us.impu)
		return nil
	})
}

// createOne provisions a user in the order that makes it visible only when
// complete: credentials, IRS, association, profile and iFCs, and last the
// public identity. A failure removes the IRS made for it.
func (u *users) createOne(ctx context.Context, us user, password, ifc string) error {
	if _, err := u.c.do(ctx, http.MethodGet, "/public/"+esc(us.impu)+"/irs/", nil, http.StatusSeeOther); err == nil {
		return errors.New("already exists")
	} else if !isStatus(err, http.StatusNotFound) {
		return err
	}
	body, err := u.privateBody(us, password)
	if err != nil {
		return err
	}
	if _, err := u.c.do(ctx, http.MethodPut, "/private/"+esc(us.impi), body, http.StatusOK); err != nil {
		return err
	}
	r, err := u.c.do(ctx, http.MethodPost, "/irs", nil, http.StatusCreated)
	if err != nil {
		return err
	}
	irsPath := r.location
	err = func() error {
		if _, err := u.c.do(ctx, http.MethodPut, "/private/"+esc(us.impi)+"/associated_implicit_registration_sets/"+esc(lastSegment(irsPath)), nil, http.StatusOK); err != nil {
			return err
		}
		r, err := u.c.do(ctx, http.MethodPost, irsPath+"/service_profiles", nil, http.StatusCreated)
		if err != nil {
			return err
		}
		sp := r.location
		if _, err := u.c.do(ctx, http.MethodPut, sp+"/filter_criteria", []byte(ifc), http.StatusOK); err != nil {
			return err
		}
		pub := "<PublicIdentity><Identity>" + xmlEscape(us.impu) + "</Identity></PublicIdentity>"
		_, err = u.c.do(ctx, http.MethodPut, sp+"/public_ids/"+esc(us.impu), []byte(pub), http.StatusOK)
		return err
	}()
	if err != nil {
		u.c.do(ctx, http.MethodDelete, irsPath, nil, http.StatusOK, http.StatusNoContent)
	}
	return err
}

func lastSegment(p string) string { return p[strings.LastIndexByte(p, '/')+1:] }

func xmlEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}

func (u *users) update(ctx context.Context) error {
	list, err := u.targets("update", 2, 3)
	if err != nil {
		return err
	}
	password := u.p.get("--password")
	if len(u.p.pos) == 3 {
		password = u.p.pos[2]
	}
	if password == "" && !u.p.has("--ifc") {
		return errors.New("users update: nothing to update (give a password or --ifc)")
	}
	var ifc string
	if u.p.has("--ifc") {
		if ifc, err = u.ifcDoc(list[0].realm); err != nil {
			return fmt.Errorf("users update: %w", err)
		}
	}
	quiet := u.p.has("-q")
	return u.each(list, u.p.has("-k"), false, true, func(us user) error {
		r, err := u.c.do(ctx, http.MethodGet, "/public/"+esc(us.impu)+"/service_profile", nil, http.StatusSeeOther)
		if isStatus(err, http.StatusNotFound) {
			return errors.New("no such user")
		}
		if err != nil {
			return err
		}
		if password != "" {
			body, err := u.privateBody(us, password)
			if err != nil {
				return err
			}
			if _, err := u.c.do(ctx, http.MethodPut, "/private/"+esc(us.impi), body, http.StatusOK); err != nil {
				return err
			}
		}
		if ifc != "" {
			if _, err := u.c.do(ctx, http.MethodPut, r.location+"/filter_criteria", []byte(ifc), http.StatusOK); err != nil {
				return err
			}
		}
		if !quiet {
			return u.show(ctx, us.impu, false)
		}
		return nil
	})
}

func (u *users) delete(ctx context.Context) error {
	list, err := u.targets("delete", 2, 2)
	if err != nil {
		return err
	}
	return u.each(list, u.p.has("-f"), u.p.has("-q"), false, func(us user) error {
		if err := u.deleteOne(ctx, us); err != nil {
			return err
		}
		fmt.Fprintf(u.out, "Deleted user %s\n", us.impu)
		return nil
	})
}

// deleteOne deletes the user's IRS (with its profiles and public
// identities), then each of its private identities left without an IRS.
func (u *users) deleteOne(ctx context.Context, us user) error {
	r, err := u.c.do(ctx, http.MethodGet, "/public/"+esc(us.impu)+"/irs/", nil, http.StatusSeeOther)
	if isStatus(err, http.StatusNotFound) {
		return errors.New("no such user")
	}
	if err != nil {
		return err
	}
	var irs struct {
		PrivateIDs []string `json:"private_ids"`
	}
	if err := u.c.getJSON(ctx, r.location+"/private_ids", &irs); err != nil {
		return err
	}
	if _, err := u.c.do(ctx, http.MethodDelete, r.location, nil, http.StatusOK, http.StatusNoContent); err != nil {
		return err
	}
	for _, impi := range irs.PrivateIDs {
		var left struct {
			IRSs []string `json:"associated_implicit_registration_sets"`
		}
		err := u.c.getJSON(ctx, "/private/"+esc(impi)+"/associated_implicit_registration_sets", &left)
		if isStatus(err, http.StatusNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		if len(left.IRSs) > 0 {
			continue // still authenticates another set
		}
		if _, err := u.c.do(ctx, http.MethodDelete, "/private/"+esc(impi), nil, http.StatusOK, http.StatusNoContent); err != nil {
			return err
		}
	}
	return nil
}

func (u *users) display(ctx context.Context) error {
	list, err := u.targets("display", 2, 2)
	if err != nil {
		return err
	}
	return u.each(list, u.p.has("-k"), u.p.has("-q"), true, func(us user) error {
		return u.show(ctx, us.impu, u.p.has("-s"))
	})
}

// show prints a user: its IRS, private identities with their credentials,
// the public identities of the set and the iFCs.
func (u *users) show(ctx context.Context, impu string, short bool) error {
	r, err := u.c.do(ctx, http.MethodGet, "/public/"+esc(impu)+"/irs/", nil, http.StatusSeeOther)
	if isStatus(err, http.StatusNotFound) {
		return errors.New("no such user")
	}
	if err != nil {
		return err
	}
	irsPath := r.location
	var irs struct {
		ServiceProfiles []struct {
			ID        string   `json:"id"`
			PublicIDs []string `json:"public_ids"`
			HasIFC    bool     `json:"filter_criteria"`
		} `json:"service_profiles"`
		PrivateIDs []string `json:"private_ids"`
	}
	if err := u.c.getJSON(ctx, irsPath, &irs); err != nil {
		return err
	}
	if short {
		fmt.Fprintf(u.out, "%s irs=%s private=%s\n", impu, lastSegment(irsPath), strings.Join(irs.PrivateIDs, ","))
		return nil
	}
	var b strings.Builder
	fmt.Fprintf(&b, "Public User ID %s:\n", impu)
	fmt.Fprintf(&b, "  Implicit Registration Set %s\n", lastSegment(irsPath))
	for _, impi := range irs.PrivateIDs {
		var priv struct {
			DigestHA1 string `json:"digest_ha1"`
			Password  string `json:"plaintext_password"`
			Realm     string `json:"realm"`
			AKA       *struct {
				AMF string `json:"amf"`
				SQN string `json:"sqn"`
			} `json:"aka"`
		}
		if err := u.c.getJSON(ctx, "/private/"+esc(impi), &priv); err != nil {
			return err
		}
		fmt.Fprintf(&b, "  Private User ID %s:\n    Realm: %s\n", impi, priv.Realm)
		if priv.DigestHA1 != "" {
			fmt.Fprintf(&b, "    Digest HA1: %s\n", priv.DigestHA1)
		}
		if priv.Password != "" {
			fmt.Fprintf(&b, "    Password: %s\n", priv.Password)
		}
		if priv.AKA != nil {
			fmt.Fprintf(&b, "    AKA: AMF %s, SQN %s\n", priv.AKA.AMF, priv.AKA.SQN)
		}
	}
	for _, sp := range irs.ServiceProfiles {
		fmt.Fprintf(&b, "  Service Profile %s:\n    Public User IDs: %s\n", sp.ID, strings.Join(sp.PublicIDs, ", "))
		if !sp.HasIFC {
			b.WriteString("    iFC: none\n")
			continue
		}
		r, err := u.c.do(ctx, http.MethodGet, irsPath+"/service_profiles/"+esc(sp.ID)+"/filter_criteria", nil, http.StatusOK)
		if err != nil {
			return err
		}
		b.WriteString("    iFC:\n")
		for _, line := range strings.Split(strings.TrimSpace(string(r.body)), "\n") {
			b.WriteString("      " + line + "\n")
		}
	}
	_, err = io.WriteString(u.out, b.String())
	return err
}

// Default listing paces (users per second): Clearwater's, chosen to keep a
// listing under a tenth of the cluster's CPU.
const (
	defaultPace     = 500
	defaultFullPace = 5
)

func (u *users) list(ctx context.Context) error {
	if len(u.p.pos) != 0 {
		return errors.New("users list: takes no arguments")
	}
	full := u.p.has("--full")
	pace := float64(defaultPace)
	if full {
		pace = defaultFullPace
	}
	if v := u.p.get("--pace"); v != "" {
		n, err := strconv.ParseFloat(v, 64)
		if err != nil || n <= 0 {
			return fmt.Errorf("users list: --pace %q is not a positive number", v)
		}
		if n > pace && !u.p.has("-f") {
			return fmt.Errorf("users list: --pace %g is above the default %g, which keeps the listing light on the site; add --force to use it", n, pace)
		}
		pace = n
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.c.BaseURL+"/public/", nil)
	if err != nil {
		return err
	}
	// A long listing is held back by the pace: no overall timeout.
	hc := *u.c.http()
	hc.Timeout = 0
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("users list: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("users list: %d %s", resp.StatusCode, strings.TrimSpace(string(b)))
	}
	d := json.NewDecoder(resp.Body)
	for _, want := range []any{json.Delim('{'), "public_ids", json.Delim('[')} {
		if tok, err := d.Token(); err != nil || tok != want {
			return fmt.Errorf("users list: unexpected answer (%v, %v)", tok, err)
		}
	}
	start := time.Now()
	failed := 0
	for n := 0; d.More(); n++ {
		var impu string
		if err := d.Decode(&impu); err != nil {
			return fmt.Errorf("users list: listing cut short after %d users: %w", n, err)
		}
		if due := start.Add(time.Duration(float64(n) / pace * float64(time.Second))); time.Until(due) > 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(time.Until(due)):
			}
		}
		if !full {
			fmt.Fprintln(u.out, impu)
			continue
		}
		if err := u.show(ctx, impu, false); err != nil {
			if !u.p.has("-k") {
				return fmt.Errorf("users list: %s: %w", impu, err)
			}
			failed++
			fmt.Fprintf(u.errOut, "%s: %v\n", impu, err)
		}
	}
	if tok, err := d.Token(); err != nil || tok != json.Delim(']') {
		return fmt.Errorf("users list: listing cut short: %v", err)
	}
	if failed > 0 {
		return fmt.Errorf("users list: %d users could not be displayed", failed)
	}
	return nil
}
