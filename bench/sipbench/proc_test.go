package main

import (
	"context"
	"errors"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"stillwater/bench/sipp"
)

func TestGroupCPU(t *testing.T) {
	pgid, err := syscall.Getpgid(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := groupCPU(pgid); err != nil {
		t.Fatalf("own process group %d: %v", pgid, err)
	}
	if _, err := groupCPU(1 << 30); err == nil {
		t.Fatal("no error for a process group that does not exist")
	}
}

func TestGood(t *testing.T) {
	tests := []struct {
		name string
		r    sipp.Result
		err  error
		want int
		good bool
	}{
		{"all", sipp.Result{Successful: 1000}, nil, 1000, true},
		{"one lost in a thousand", sipp.Result{Successful: 999, Failed: 1}, nil, 1000, true},
		{"two lost", sipp.Result{Successful: 998, Failed: 2}, nil, 1000, false},
		{"not all ran", sipp.Result{Successful: 500}, nil, 1000, false},
		{"error", sipp.Result{Successful: 1000}, errors.New("timeout"), 1000, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := good(tc.r, tc.err, tc.want); got != tc.good {
				t.Fatalf("good = %v, want %v", got, tc.good)
			}
		})
	}
}

func TestKeptUp(t *testing.T) {
	tests := []struct {
		name string
		p50  time.Duration
		want bool
	}{
		{"fast", 4 * time.Millisecond, true},
		{"at the limit", time.Second, true},
		{"queued", 3468 * time.Millisecond, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := sipp.Result{ResponseTimes: map[string]sipp.Percentiles{"reg": {P50: tc.p50}}}
			if got := keptUp(r, "reg"); got != tc.want {
				t.Fatalf("keptUp = %v, want %v", got, tc.want)
			}
		})
	}
	if !keptUp(sipp.Result{}, "inv") {
		t.Fatal("a step without response times fails on the success count alone")
	}
}

func TestWaitTCP(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	if err := waitTCP(context.Background(), addr, 5*time.Second, nil); err != nil {
		t.Fatal(err)
	}
	l.Close()
	exited := make(chan struct{})
	close(exited)
	if err := waitTCP(context.Background(), addr, 5*time.Second, exited); err == nil || !strings.Contains(err.Error(), "exited") {
		t.Fatalf("closed port, exited process: %v", err)
	}
}
