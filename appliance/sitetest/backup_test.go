package sitetest

import (
	"fmt"
	"maps"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestBackupRestore backs up a loaded site with `stillwater backup`, restores
// the file onto a fresh site with `stillwater restore` and compares them.
func TestBackupRestore(t *testing.T) {
	skipIfShort(t)
	const records = 3000
	old := newSite(t, siteOpts{nodes: 3, shared: sharedConfig})

	want := map[string]string{}
	for i := range records {
		want[fmt.Sprintf("bk/%04d", i)] = fmt.Sprintf("value %d %s", i, strings.Repeat("v", i%50))
	}
	putAll(t, old, want)
	// Timers far in the future, so that both sites hold all of them.
	cb := newCallbacks(t)
	for i := range 30 {
		tag := []string{"REG", "CALL", "SUB"}[i%3]
		if _, err := old.node(1 + i%3).createTimer(timerJSON(3600, 0, cb.url(), fmt.Sprintf("bk-%d", i), tag)); err != nil {
			t.Fatal(err)
		}
	}
	oldStats, err := old.node(2).timerStats()
	if err != nil {
		t.Fatal(err)
	}
	if oldStats["REG"] != 10 || oldStats["CALL"] != 10 || oldStats["SUB"] != 10 {
		t.Fatalf("timer stats before the backup: %v, want 10 of each tag", oldStats)
	}

	// Uploaded through one node and backed up through another: a backup
	// taken after an acknowledged upload must hold it.
	changed := sharedConfig + "log_level=3\n"
	if r, err := old.node(1).admin(http.MethodPut, "/config/shared_config", []byte(changed)); err != nil || r.code != http.StatusOK {
		t.Fatalf("PUT /config/shared_config: %v %v", r, err)
	}
	file := filepath.Join(t.TempDir(), "site.backup")
	out, errOut, err := old.node(2).cli("backup", file)
	if err != nil {
		t.Fatalf("stillwater backup: %v\n%s%s", err, out, errOut)
	}
	t.Logf("%s", strings.TrimSpace(out))
	old.stopAll()

	// A fresh site of the same shape on the same ports: new data, new key.
	p := old.ports
	fresh := newSite(t, siteOpts{nodes: 3, shared: sharedConfig, ports: &p})
	if st, err := fresh.node(1).timerStats(); err != nil || len(st) != 0 {
		t.Fatalf("fresh site's timer stats: %v %v, want none", st, err)
	}
	out, errOut, err = fresh.node(1).cli("restore", file)
	if err != nil {
		t.Fatalf("stillwater restore: %v\n%s%s", err, out, errOut)
	}
	t.Logf("%s", strings.TrimSpace(out))

	got := getAll(t, fresh, want)
	diff := 0
	for k, v := range want {
		if got[k] != v {
			if diff++; diff <= 10 {
				t.Errorf("%s: restored %q, backed up %q", k, got[k], v)
			}
		}
	}
	if diff > 0 {
		t.Errorf("%d of %d records differ after the restore", diff, len(want))
	}
	newStats, err := fresh.node(3).timerStats()
	if err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(oldStats, newStats) {
		t.Errorf("timer stats: backed up %v, restored %v", oldStats, newStats)
	}
	waitFor(t, 10*time.Second, "the restored shared_config on node 3", func() error {
		out, errOut, err := fresh.node(3).cli("config", "download", "shared_config")
		if err != nil {
			return fmt.Errorf("%v: %s", err, errOut)
		}
		if out != changed {
			return fmt.Errorf("shared_config %q, backed up %q", out, changed)
		}
		return nil
	})
}

// putAll writes records through the site's nodes in turn, in parallel.
func putAll(t *testing.T, s *site, records map[string]string) {
	t.Helper()
	keys := make(chan string)
	var mu sync.Mutex
	var errs []string
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Go(func() {
			n := s.node(1 + w%3)
			for k := range keys {
				if r, err := n.put(k, records[k]); err != nil || r.code != http.StatusNoContent {
					mu.Lock()
					errs = append(errs, fmt.Sprintf("PUT %s via node %d: %v %v", k, n.idx, r, err))
					mu.Unlock()
				}
			}
		})
	}
	for k := range records {
		keys <- k
	}
	close(keys)
	wg.Wait()
	if len(errs) > 0 {
		t.Fatalf("%d writes failed; first: %s", len(errs), errs[0])
	}
}

// getAll reads records through the site's nodes in turn, in parallel; a
// missing record reads as "".
func getAll(t *testing.T, s *site, records map[string]string) map[string]string {
	t.Helper()
	keys := make(chan string)
	got := map[string]string{}
	var mu sync.Mutex
	var errs []string
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Go(func() {
			n := s.node(1 + w%3)
			for k := range keys {
				r, err := n.get(k)
				mu.Lock()
				switch {
				case err == nil && r.code == http.StatusOK:
					got[k] = r.body
				case err == nil && r.code == http.StatusNotFound:
				default:
					errs = append(errs, fmt.Sprintf("GET %s via node %d: %v %v", k, n.idx, r, err))
				}
				mu.Unlock()
			}
		})
	}
	for k := range records {
		keys <- k
	}
	close(keys)
	wg.Wait()
	if len(errs) > 0 {
		t.Fatalf("%d reads failed; first: %s", len(errs), errs[0])
	}
	return got
}
