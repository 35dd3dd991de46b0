package sitetest

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

const sharedConfig = "home_domain=example.com\n"

// TestBadInput: malformed requests and configuration are refused with a
// reason and change nothing; a damaged data directory stops its node from
// starting while the rest of the site serves on.
func TestBadInput(t *testing.T) {
	s := newSite(t, siteOpts{nodes: 3, shared: sharedConfig})

	t.Run("timer JSON", func(t *testing.T) {
		cb := "http://127.0.0.1:9/callback"
		for _, c := range []struct{ body, reason string }{
			{`not json`, "JSON"},
			{`{"callback":{"http":{"uri":"` + cb + `"}}}`, `"timing"`},
			{`{"timing":{"interval":"ten"},"callback":{"http":{"uri":"` + cb + `"}}}`, "timing.interval"},
			{`{"timing":{"interval":-1},"callback":{"http":{"uri":"` + cb + `"}}}`, "timing.interval"},
			{`{"timing":{"interval":5},"callback":{"http":{}}}`, "callback.http.uri"},
			{`{"timing":{"interval":5},"callback":{"sip":{"uri":"sip:x"}}}`, "http"},
		} {
			r, err := do(http.MethodPost, s.node(2).chronosURL("/timers"), "", []byte(c.body))
			if err != nil {
				t.Fatal(err)
			}
			if r.code != http.StatusBadRequest || !strings.Contains(r.body, c.reason) {
				t.Errorf("POST /timers %s: got %v, want 400 naming %s", c.body, r, c.reason)
			}
		}
	})

	t.Run("config validate", func(t *testing.T) {
		dir := t.TempDir()
		good := filepath.Join(dir, "fallback_ifcs.xml")
		os.WriteFile(good, []byte(`<FallbackIFCsSet><InitialFilterCriteria><Priority>0</Priority>
<ApplicationServer><ServerName>sip:as.example.com</ServerName><DefaultHandling>0</DefaultHandling></ApplicationServer>
</InitialFilterCriteria></FallbackIFCsSet>`), 0o644)
		if out, errOut, err := s.node(1).cli("config", "validate", "fallback_ifcs", good); err != nil || !strings.Contains(out, "is valid") {
			t.Errorf("validating a good fallback_ifcs.xml: %v %q %q", err, out, errOut)
		}
		bad := filepath.Join(dir, "shared_ifcs.xml")
		os.WriteFile(bad, []byte("<SharedIFCsSets>\n<SharedIFCsSet><SetID>x</SetID></SharedIFCsSet>\n</SharedIFCsSets>\n"), 0o644)
		if _, errOut, err := s.node(1).cli("config", "validate", "shared_ifcs", bad); err == nil || !strings.Contains(errOut, "shared_ifcs.xml:2") {
			t.Errorf("validating a bad shared_ifcs.xml: err %v, stderr %q; want a failure naming file and line", err, errOut)
		}
	})

	t.Run("shared_config", func(t *testing.T) {
		// The document in force: the first node's file plus the Ellis
		// secrets the site generated when it was created.
		before, errOut, err := s.node(1).cli("config", "download", "shared_config")
		if err != nil || !strings.HasPrefix(before, sharedConfig) || !strings.Contains(before, "signup_key=") {
			t.Fatalf("download before any upload: %q (err %v %s), want %q with generated secrets", before, err, errOut, sharedConfig)
		}
		dir := t.TempDir()
		bad := filepath.Join(dir, "bad")
		os.WriteFile(bad, []byte(sharedConfig+"no_such_option=1\n"), 0o644)
		out, errOut, err := s.node(1).cli("config", "upload", "shared_config", bad)
		if err == nil || !strings.Contains(errOut, "no_such_option") {
			t.Errorf("uploading an unknown option: err %v, stderr %q; want failure naming no_such_option", err, errOut+out)
		}
		// The node refuses it too, should a client skip the command's check.
		r, err := s.node(1).admin(http.MethodPut, "/config/shared_config", []byte(sharedConfig+"no_such_option=1\n"))
		if err != nil || r.code != http.StatusBadRequest || !strings.Contains(r.body, "no_such_option") {
			t.Errorf("PUT /config/shared_config with an unknown option: %v %v, want 400 naming it", r, err)
		}
		for i := 1; i <= 3; i++ {
			out, errOut, err := s.node(i).cli("config", "download", "shared_config")
			if err != nil || out != before {
				t.Errorf("download via node %d after a refused upload: %q (err %v %s), want the old %q", i, out, err, errOut, before)
			}
		}

		good := filepath.Join(dir, "good")
		changed := sharedConfig + "log_level=4\n"
		os.WriteFile(good, []byte(changed), 0o644)
		if out, errOut, err := s.node(1).cli("config", "upload", "shared_config", good); err != nil {
			t.Fatalf("uploading a valid change: %v\n%s%s", err, out, errOut)
		}
		waitFor(t, 10*time.Second, "the change to reach node 2", func() error {
			out, errOut, err := s.node(2).cli("config", "download", "shared_config")
			if err != nil {
				return fmt.Errorf("%v: %s", err, errOut)
			}
			if out != changed {
				return fmt.Errorf("node 2 has %q", out)
			}
			return nil
		})
	})

	t.Run("damaged data directory", func(t *testing.T) {
		n3 := s.node(3)
		for i := range 200 {
			s.node(1+i%3).mustPut(t, fmt.Sprintf("pre/%d", i), strings.Repeat("x", 100))
		}
		n3.kill()

		// A flipped byte in the middle of the newest WAL segment's log (the
		// zeros written ahead of the log hold nothing to damage).
		segs, _ := filepath.Glob(filepath.Join(n3.dataDir, "wal", "*.wal"))
		if len(segs) == 0 {
			t.Fatalf("no WAL segment under %s", filepath.Join(n3.dataDir, "wal"))
		}
		sort.Strings(segs)
		seg := segs[len(segs)-1]
		data, err := os.ReadFile(seg)
		if err != nil {
			t.Fatal(err)
		}
		mid := len(bytes.TrimRight(data, "\x00")) / 2
		data[mid] ^= 0xFF
		os.WriteFile(seg, data, 0o640)
		refuses(t, n3, "a WAL segment with a flipped byte")
		serves(t, s, "while node 3 refuses to start")
		data[mid] ^= 0xFF
		os.WriteFile(seg, data, 0o640)

		id := filepath.Join(n3.dataDir, "node.json")
		good, err := os.ReadFile(id)
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(id, []byte("{garbage"), 0o600)
		refuses(t, n3, "a garbage node.json")
		serves(t, s, "while node 3 refuses to start")

		// Repaired, the node rejoins and catches up.
		os.WriteFile(id, good, 0o600)
		if err := n3.start(); err != nil {
			t.Fatalf("node 3 with its data directory repaired: %v", err)
		}
		waitConverged(t, s.node(1), []int{1, 2, 3}, time.Minute)
		waitFor(t, 30*time.Second, "node 3 to catch up", func() error {
			r, err := n3.getLocal("serve/2/9")
			if err != nil || r.code != http.StatusOK {
				return fmt.Errorf("%v %v", r, err)
			}
			return nil
		})
	})
}

// refuses checks that the node will not start and says its data directory
// is damaged.
func refuses(t *testing.T, n *node, damage string) {
	t.Helper()
	up, err := n.launch(time.Minute)
	if up {
		n.kill()
		t.Fatalf("node %d started with %s", n.idx, damage)
	}
	if err == nil || !strings.Contains(err.Error(), "data directory") || !strings.Contains(err.Error(), "damaged") {
		t.Fatalf("node %d with %s: want a refusal saying the data directory is damaged, got: %v", n.idx, damage, err)
	}
	t.Logf("node %d with %s refused to start: %s", n.idx, damage, lastLine(err.Error()))
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// serves checks that nodes 1 and 2 take writes.
func serves(t *testing.T, s *site, when string) {
	t.Helper()
	for i := range 10 {
		n := s.node(1 + i%2)
		k := fmt.Sprintf("serve/%d/%d", n.idx, i)
		r, err := n.put(k, "ok")
		if err != nil || r.code != http.StatusNoContent {
			t.Fatalf("PUT %s via node %d %s: %v %v", k, n.idx, when, r, err)
		}
	}
}
