// Command stillwater is the Stillwater appliance: `stillwater run` starts a
// node, and the other subcommands manage the site through the local node's
// admin API.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"stillwater/appliance"
	"stillwater/appliance/config"
	"stillwater/appliance/ellis"
	"stillwater/appliance/gctune"
	"stillwater/appliance/provtools"
	"stillwater/consensus"
)

const usage = `usage: stillwater [-c config-dir] [-d data-dir] <command> [args]

commands:
  run                              start this node
  cluster status                   members, shards, leaders, applied index and lag
  cluster decommission             move this node's shards away and leave the site
  cluster remove-node <id>         remove a dead node from the site
  backup <file>                    online, consistent backup of the whole site
  restore <file>                   restore a backup onto this (fresh) site
  config download <name> [file]    fetch shared configuration (default: stdout)
  config upload <name> [file]      validate and upload shared configuration
  config validate <name> [file]    check a shared configuration file offline
                                   (default file: the name's Clearwater file name)
  users create|update|delete|display|list|import ...
                                   provision subscribers (clearwater-prov-tools)
  numbers create --start N --count M [--pstn] [--realm R]
                                   add numbers to Ellis's pool

names: ` + "%s" + `
The config directory defaults to $STILLWATER_CONFIG_DIR or /etc/clearwater.
`

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "stillwater:", err)
		os.Exit(1)
	}
}

func run(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("stillwater", flag.ContinueOnError)
	fs.SetOutput(stderr)
	defDir := os.Getenv("STILLWATER_CONFIG_DIR")
	if defDir == "" {
		defDir = "/etc/clearwater"
	}
	configDir := fs.String("c", defDir, "configuration directory (local_config, shared_config, user_settings)")
	dataDir := fs.String("d", "", "data directory (overrides data_dir)")
	fs.Usage = func() { fmt.Fprintf(stderr, usage, strings.Join(config.Names(), ", ")) }
	if err := fs.Parse(args); err != nil {
		return err
	}
	args = fs.Args()
	if len(args) == 0 {
		fs.Usage()
		return errors.New("no command")
	}
	s, err := appliance.LoadSettings(*configDir, *dataDir)
	if err != nil {
		return err
	}
	switch args[0] {
	case "run":
		return runNode(s, stdout)
	case "cluster":
		if len(args) < 2 {
			return errors.New("cluster: want status, decommission or remove-node <id>")
		}
		switch args[1] {
		case "status":
			return clusterStatus(s, stdout)
		case "decommission":
			return admin(s, http.MethodPost, "/cluster/decommission", nil, stdout, 10*time.Minute)
		case "remove-node":
			if len(args) != 3 {
				return errors.New("cluster remove-node: want the node id")
			}
			return admin(s, http.MethodPost, "/cluster/remove-node?id="+args[2], nil, stdout, time.Minute)
		}
		return fmt.Errorf("cluster: unknown command %q", args[1])
	case "backup":
		if len(args) != 2 {
			return errors.New("backup: want a file name")
		}
		return backup(s, args[1], stdout)
	case "restore":
		if len(args) != 2 {
			return errors.New("restore: want a file name")
		}
		f, err := os.Open(args[1])
		if err != nil {
			return err
		}
		defer f.Close()
		return admin(s, http.MethodPost, "/restore", f, stdout, time.Hour)
	case "config":
		return configCmd(s, args[1:], stdout)
	case "users":
		addr := net.JoinHostPort(s.LocalIP, strconv.Itoa(s.Config.Int("homestead_prov_port")))
		return provtools.Users(context.Background(), args[1:], stdout, stderr, provtools.NewClient(addr))
	case "numbers":
		return ellis.NumbersCommand(context.Background(), args[1:], stdout, ellis.CreateNumbersFunc(
			func(ctx context.Context, start, count int64, pstn bool, realm string) (int, int, error) {
				return createNumbers(s, start, count, pstn, realm)
			}))
	}
	fs.Usage()
	return fmt.Errorf("unknown command %q", args[0])
}

func createNumbers(s *appliance.Settings, start, count int64, pstn bool, realm string) (int, int, error) {
	q := url.Values{"start": {fmt.Sprint(start)}, "count": {fmt.Sprint(count)}, "pstn": {fmt.Sprint(pstn)}, "realm": {realm}}
	resp, err := adminDo(s, http.MethodPost, "/numbers?"+q.Encode(), nil, 10*time.Minute)
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	var res struct{ Created, Present int }
	if err := json.NewDecoder(resp.Body).Decode(&res); err != nil {
		return 0, 0, err
	}
	return res.Created, res.Present, nil
}

func runNode(s *appliance.Settings, stdout io.Writer) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if os.Getenv("GOGC") == "" {
		// An operator's GOGC is left alone; otherwise the target follows load.
		go gctune.Run(ctx, gctune.DefaultPolicy(gctune.MachineMemory()), time.Second, slog.Default())
	}
	startCtx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	n, err := appliance.Start(startCtx, s, os.Stderr)
	cancel()
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "stillwater: node %s of site %s is up (data in %s)\n", s.NodeID, n.Config().String("local_site_name"), s.DataDir)
	for _, l := range n.Listens {
		fmt.Fprintf(stdout, "  %-28s %s\n", l.Name, l.Addr)
	}
	if n.GeneratedSignupKey {
		fmt.Fprintf(stdout, "  Ellis signup code (generated; kept in shared_config as signup_key): %s\n", n.Config().String("signup_key"))
	}
	select {
	case <-ctx.Done():
	case <-n.Done():
	}
	return n.Close()
}

func admin(s *appliance.Settings, method, path string, body io.Reader, out io.Writer, timeout time.Duration) error {
	resp, err := adminDo(s, method, path, body, timeout)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, err = io.Copy(out, resp.Body)
	return err
}

func adminDo(s *appliance.Settings, method, path string, body io.Reader, timeout time.Duration) (*http.Response, error) {
	token, err := s.AdminToken()
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequest(method, "http://"+s.AdminAddr()+path, body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := (&http.Client{Timeout: timeout}).Do(req)
	if err != nil {
		return nil, fmt.Errorf("node at %s: %w", s.AdminAddr(), err)
	}
	if resp.StatusCode/100 != 2 {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return nil, fmt.Errorf("%s", strings.TrimSpace(string(b)))
	}
	return resp, nil
}

func clusterStatus(s *appliance.Settings, out io.Writer) error {
	resp, err := adminDo(s, http.MethodGet, "/cluster/status", nil, time.Minute)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var st consensus.SiteStatus
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "site %s, %d shards\n\nMEMBER\tADDRESS\tSTATE\tREACHABLE\n", st.Meta.Site, st.Meta.Shards)
	for _, ns := range st.Nodes {
		m := st.Meta.Members[ns.ID]
		reach := "yes"
		if ns.Error != "" {
			reach = "no: " + ns.Error
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", ns.ID, m.Addr, m.State, reach)
	}
	fmt.Fprintf(tw, "\nGROUP\tLEADER\tTERM\tREPLICA\tSTATE\tAPPLIED\tLAG\n")
	type row struct {
		node string
		g    consensus.GroupStatus
	}
	groups := map[string][]row{}
	var names []string
	for _, ns := range st.Nodes {
		for _, g := range ns.Groups {
			if _, ok := groups[g.Group]; !ok {
				names = append(names, g.Group)
			}
			groups[g.Group] = append(groups[g.Group], row{ns.ID, g})
		}
	}
	sort.Slice(names, func(i, j int) bool { return groupKey(names[i]) < groupKey(names[j]) })
	for _, name := range names {
		var leaderLast uint64
		for _, r := range groups[name] {
			if r.g.State == "Leader" {
				leaderLast = r.g.Last
			}
		}
		for i, r := range groups[name] {
			lag := "-"
			if leaderLast > 0 && leaderLast >= r.g.Applied {
				lag = fmt.Sprint(leaderLast - r.g.Applied)
			}
			g, leader, term := "", "", ""
			if i == 0 {
				g, leader, term = name, r.g.Leader, fmt.Sprint(r.g.Term)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\n", g, leader, term, r.node, r.g.State, r.g.Applied, lag)
		}
	}
	return tw.Flush()
}

func groupKey(name string) int {
	var n int
	if _, err := fmt.Sscanf(name, "s%d", &n); err != nil {
		return -1
	}
	return n
}

func backup(s *appliance.Settings, file string, out io.Writer) error {
	resp, err := adminDo(s, http.MethodGet, "/backup", nil, time.Hour)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	tmp := file + ".partial"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	n, err := io.Copy(f, resp.Body)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		if msg := resp.Trailer.Get("X-Backup-Error"); msg != "" {
			err = errors.New(msg)
		}
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("backup failed: %w", err)
	}
	if err := os.Rename(tmp, file); err != nil {
		return err
	}
	fmt.Fprintf(out, "backup of the site written to %s (%d bytes)\n", file, n)
	return nil
}

func configCmd(s *appliance.Settings, args []string, out io.Writer) error {
	if len(args) < 2 || len(args) > 3 {
		return errors.New("config: want download|upload|validate <name> [file]")
	}
	name := args[1]
	if config.FileName(name) == "" {
		return fmt.Errorf("config: unknown name %q; known: %s", name, strings.Join(config.Names(), ", "))
	}
	switch args[0] {
	case "download":
		if len(args) == 2 {
			return admin(s, http.MethodGet, "/config/"+name, nil, out, time.Minute)
		}
		f, err := os.Create(args[2])
		if err != nil {
			return err
		}
		if err := admin(s, http.MethodGet, "/config/"+name, nil, f, time.Minute); err != nil {
			f.Close()
			return err
		}
		return f.Close()
	case "validate":
		// Offline, as cw-validate_shared_ifcs_xml and friends were: no node
		// is needed.
		file, _, err := readValidated(name, args)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "%s is valid\n", file)
		return nil
	case "upload":
		file, b, err := readValidated(name, args)
		if err != nil {
			return fmt.Errorf("%s refused, the configuration in force is unchanged:\n%w", file, err)
		}
		return admin(s, http.MethodPut, "/config/"+name, strings.NewReader(string(b)), out, time.Minute)
	}
	return fmt.Errorf("config: unknown command %q", args[0])
}

// readValidated reads the file a config command names (args[2], else the
// document's usual file name) and validates it as document name.
func readValidated(name string, args []string) (string, []byte, error) {
	file := config.FileName(name)
	if len(args) == 3 {
		file = args[2]
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return file, nil, err
	}
	if err := config.Validate(name, b); err != nil {
		return file, nil, fmt.Errorf("%s is not valid:\n%w", file, err)
	}
	return file, b, nil
}
