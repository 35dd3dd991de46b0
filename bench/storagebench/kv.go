package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"stillwater/consensus"
	"stillwater/consensus/wal"
)

// kvResult is one kv write point: a fresh site with a given shard count.
type kvResult struct {
	shards  int
	entry   string
	leaders string
	load    loadResult
	wal     []walRate // per node, in the window
	io      ioRate    // this process (all three nodes), in the window
	stages  map[string]stage
}

// ioRate is what /proc/self/io counted per second (bytes handed to write
// system calls: WAL, state stores, sockets; and write calls), and the bytes
// the data directory's block device wrote. The device's own count is used
// because the process's write_bytes counts whole page-cache folios: it
// reported a gigabyte a second for a WAL that overwrites zeros it wrote
// ahead, where the device wrote 11 KB per commit either way.
type ioRate struct {
	wcharMB, syscw, deviceMB float64
}

type ioCounters struct{ wchar, syscw, deviceBytes uint64 }

func readIO(dir string) ioCounters {
	var c ioCounters
	if b, err := os.ReadFile("/proc/self/io"); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			name, val, _ := strings.Cut(line, ": ")
			n, _ := strconv.ParseUint(strings.TrimSpace(val), 10, 64)
			switch name {
			case "wchar":
				c.wchar = n
			case "syscw":
				c.syscw = n
			}
		}
	}
	c.deviceBytes = deviceWritten(dir)
	return c
}

// deviceWritten is the bytes written so far by the block device holding
// dir (the whole device: other processes' writes count too), or 0 when it
// cannot be told, as on tmpfs, or dir is "".
func deviceWritten(dir string) uint64 {
	if dir == "" {
		return 0
	}
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/sys/dev/block/%d:%d/stat", unix.Major(st.Dev), unix.Minor(st.Dev)))
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) < 7 {
		return 0
	}
	sectors, _ := strconv.ParseUint(f[6], 10, 64)
	return sectors * 512
}

func (a ioCounters) rate(b ioCounters, d time.Duration) ioRate {
	s := d.Seconds()
	return ioRate{
		wcharMB:  float64(b.wchar-a.wchar) / s / 1e6,
		syscw:    float64(b.syscw-a.syscw) / s,
		deviceMB: float64(b.deviceBytes-a.deviceBytes) / s / 1e6,
	}
}

// walRate is one node's WAL activity per second of the window.
type walRate struct {
	syncs, batches, records, mbytes float64
}

func walRates(a, b []wal.Stats, d time.Duration) []walRate {
	out := make([]walRate, len(a))
	s := d.Seconds()
	for i := range a {
		out[i] = walRate{
			syncs:   float64(b[i].Syncs-a[i].Syncs) / s,
			batches: float64(b[i].Batches-a[i].Batches) / s,
			records: float64(b[i].Records-a[i].Records) / s,
			mbytes:  float64(b[i].Bytes-a[i].Bytes) / s / 1e6,
		}
	}
	return out
}

// runKV measures acknowledged kv.Put writes on a fresh three-node site.
func runKV(ctx context.Context, o *options, shards int) (kvResult, error) {
	dir, err := os.MkdirTemp(o.dir, fmt.Sprintf("kv-%dshards-", shards))
	if err != nil {
		return kvResult{}, err
	}
	sctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	s, err := startSite(sctx, dir, shards, siteOptions{null: o.apply == "null", walMaxWait: o.walMaxWait}, o.log)
	cancel()
	if err != nil {
		return kvResult{}, err
	}
	defer s.close()
	res := kvResult{shards: shards, entry: o.entry, leaders: s.leaderCounts(ctx)}

	// Each writer cycles through keys of its own; a key's node is fixed.
	const keysPerWriter = 4096
	value := make([]byte, o.valueSize)
	rand.Read(value)
	leaders := s.leaders(ctx)
	keys := make([][]string, o.writers)
	via := make([][]int, o.writers)
	for w := range o.writers {
		keys[w] = make([]string, keysPerWriter)
		via[w] = make([]int, keysPerWriter)
		for i := range keysPerWriter {
			k := fmt.Sprintf("bench/w%03d/%06d", w, i)
			keys[w][i] = k
			switch o.entry {
			case "leader":
				via[w][i] = leaders[s.nodes[0].cons.ShardOf([]byte(k))]
			default:
				via[w][i] = w % len(s.nodes)
			}
		}
	}
	put := func(ctx context.Context, w, i int) error {
		i %= keysPerWriter
		_, err := s.nodes[via[w][i]].kv.Put(ctx, keys[w][i], value)
		return err
	}
	if o.apply == "null" {
		// The same bytes through the same routing, to a machine that keeps
		// nothing.
		put = func(ctx context.Context, w, i int) error {
			i %= keysPerWriter
			n := s.nodes[via[w][i]].cons
			_, err := n.Propose(ctx, n.ShardOf([]byte(keys[w][i])), consensus.KindKV, value)
			return err
		}
	}
	var before []wal.Stats
	var io0 ioCounters
	var t0 time.Time
	var rs *raftStages
	mark := func(open bool) {
		if open {
			before, io0, t0 = s.walStats(), readIO(s.dir), time.Now()
			if o.stages {
				rs = startRaftStages()
			}
			startProfile(o, fmt.Sprintf("kv-%dshards", shards))
			return
		}
		d := time.Since(t0)
		res.wal = walRates(before, s.walStats(), d)
		res.io = io0.rate(readIO(s.dir), d)
		if rs != nil {
			res.stages = rs.stop()
		}
		stopProfile()
	}
	res.load = runLoad(ctx, o.writers, o.warmup, o.duration, put, mark)
	return res, nil
}
