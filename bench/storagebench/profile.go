package main

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime/pprof"
	"runtime/trace"
	"sync"
	"time"
)

var (
	profFile  *os.File
	traceFile *os.File
	traceDone func() // stops the trace once, from the timer or the window's end
)

// startProfile starts, when asked for, a CPU profile of one measured window
// (-cpuprofile p writes p.<point>.pprof) and an execution trace of its first
// seconds (-trace p writes p.<point>.trace).
func startProfile(o *options, point string) {
	if o.cpuprofile != "" {
		path := o.cpuprofile + "." + point + ".pprof"
		f, err := os.Create(path)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintf(console, "storagebench: cpu profile: %v\n", err)
		} else {
			profFile = f
			fmt.Fprintf(console, "  profiling into %s\n", filepath.Clean(path))
		}
	}
	if o.trace != "" {
		path := o.trace + "." + point + ".trace"
		f, err := os.Create(path)
		if err == nil {
			err = trace.Start(f)
		}
		if err != nil {
			fmt.Fprintf(console, "storagebench: trace: %v\n", err)
			return
		}
		traceFile = f
		traceDone = sync.OnceFunc(trace.Stop)
		time.AfterFunc(3*time.Second, traceDone)
		fmt.Fprintf(console, "  tracing into %s\n", filepath.Clean(path))
	}
}

func stopProfile() {
	if profFile != nil {
		pprof.StopCPUProfile()
		profFile.Close()
		profFile = nil
	}
	if traceFile != nil {
		traceDone()
		traceFile.Close()
		traceFile = nil
	}
}
