package sitetest

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestSingleNodeRestart: an all-in-one node configured with nothing but its
// ports and data directory keeps its records and its timers across kill -9.
func TestSingleNodeRestart(t *testing.T) {
	s := newSite(t, siteOpts{nodes: 1, bare: true})
	n := s.node(1)
	cb := newCallbacks(t)

	records := map[string]string{}
	for i := range 50 {
		k, v := fmt.Sprintf("restart/%02d", i), fmt.Sprintf("value-%d", i)
		n.mustPut(t, k, v)
		records[k] = v
	}
	// The last write of a key is the one that must survive.
	n.mustPut(t, "restart/00", "rewritten")
	records["restart/00"] = "rewritten"

	// Shared configuration uploaded to the site outlives the node's restart
	// (it is not re-seeded from the node's files).
	shared := filepath.Join(t.TempDir(), "shared_config")
	os.WriteFile(shared, []byte("home_domain=restart.example.com\nlog_level=3\n"), 0o644)
	if out, errOut, err := n.cli("config", "upload", "shared_config", shared); err != nil {
		t.Fatalf("config upload: %v\n%s%s", err, out, errOut)
	}

	if _, err := n.createTimer(timerJSON(30, 0, cb.url(), "long", "LONG")); err != nil {
		t.Fatal(err)
	}
	shortCall := time.Now()
	if _, err := n.createTimer(timerJSON(3, 0, cb.url(), "short", "SHORT")); err != nil {
		t.Fatal(err)
	}
	n.kill()

	if err := n.start(); err != nil {
		t.Fatal(err)
	}
	up := time.Now()
	for k, v := range records {
		n.mustGet(t, k, v)
	}
	if out, errOut, err := n.cli("config", "download", "shared_config"); err != nil || out != "home_domain=restart.example.com\nlog_level=3\n" {
		t.Errorf("shared_config after the restart: %q (%v %s), want the one uploaded before", out, err, errOut)
	}
	// The short timer comes due about now; the long one is pending until 30 s.
	waitFor(t, 10*time.Second, "the long timer in the timer statistics", func() error {
		st, err := n.timerStats()
		if err != nil {
			return err
		}
		if st["LONG"] != 1 {
			return fmt.Errorf("stats %v, want LONG:1", st)
		}
		return nil
	})
	deadline := up.Add(10 * time.Second)
	if due := shortCall.Add(4 * time.Second); due.After(up) {
		deadline = due.Add(10 * time.Second)
	}
	if !cb.wait(deadline, func(all []pop) bool { return delivered(all)["short"] >= 1 }) {
		t.Fatalf("the 3 s timer created before kill -9 never popped after the restart; callbacks: %+v", cb.of("short"))
	}
	p := cb.of("short")[0]
	if p.seq != 1 {
		t.Errorf("short timer popped with sequence number %d, want 1", p.seq)
	}
	if early := shortCall.Add(3 * time.Second); p.at.Before(early) {
		t.Errorf("short timer popped %v before it was due", early.Sub(p.at))
	}
	if got := cb.of("long"); len(got) != 0 {
		t.Errorf("30 s timer popped early: %+v", got)
	}
	waitFor(t, 10*time.Second, "the popped timer to leave the statistics", func() error {
		st, err := n.timerStats()
		if err != nil {
			return err
		}
		if st["SHORT"] != 0 || st["LONG"] != 1 {
			return fmt.Errorf("stats %v, want LONG:1 only", st)
		}
		return nil
	})
}
