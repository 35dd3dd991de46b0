package overload

import (
	"testing"
	"time"
)

// simResult summarises a simulated run after its warm-up.
type simResult struct {
	admittedRate  float64 // admitted requests per second
	processedRate float64 // requests run to completion per second
	expired       int
	maxQueue      int // longest queue seen
	maxQueueWarm  int // longest queue seen after the warm-up
	finalRate     float64
}

// simulate runs a discrete-event model of a server in simulated time: a FIFO
// queue in front of `workers` workers that each take `service` per request,
// fed at `offered` requests per second through the Monitor (Admit on
// arrival, Expired on dequeue, Done with receipt-to-completion latency).
func simulate(m *Monitor, clk *fakeClock, offered float64, workers int, service, warmup, total time.Duration) simResult {
	start := clk.Now()
	end := start.Add(total)
	warmEnd := start.Add(warmup)
	interval := time.Duration(float64(time.Second) / offered)

	type worker struct {
		busy     bool
		until    time.Time
		received time.Time
	}
	ws := make([]worker, workers)
	var queue []time.Time
	var res simResult
	admitted, processed := 0, 0

	dispatch := func(now time.Time) {
		for i := range ws {
			for !ws[i].busy && len(queue) > 0 {
				r := queue[0]
				queue = queue[1:]
				if m.Expired(r) {
					if now.After(warmEnd) {
						res.expired++
					}
					continue
				}
				ws[i] = worker{busy: true, until: now.Add(service), received: r}
			}
		}
	}

	nextArrival := start
	for {
		// Earliest busy worker.
		wi := -1
		for i := range ws {
			if ws[i].busy && (wi < 0 || ws[i].until.Before(ws[wi].until)) {
				wi = i
			}
		}
		arrivalDue := nextArrival.Before(end)
		switch {
		case arrivalDue && (wi < 0 || !ws[wi].until.Before(nextArrival)):
			now := nextArrival
			clk.Set(now)
			if m.Admit() {
				queue = append(queue, now)
				if now.After(warmEnd) {
					admitted++
				}
			}
			nextArrival = nextArrival.Add(interval)
			dispatch(now)
		case wi >= 0 && ws[wi].until.Before(end):
			now := ws[wi].until
			clk.Set(now)
			m.Done(now.Sub(ws[wi].received))
			ws[wi].busy = false
			if now.After(warmEnd) {
				processed++
			}
			dispatch(now)
		default:
			measured := (total - warmup).Seconds()
			res.admittedRate = float64(admitted) / measured
			res.processedRate = float64(processed) / measured
			res.finalRate = m.Stats().Rate
			return res
		}
		res.maxQueue = max(res.maxQueue, len(queue))
		if clk.Now().After(warmEnd) {
			res.maxQueueWarm = max(res.maxQueueWarm, len(queue))
		}
	}
}

// TestSustainedOverload offers twice the sustainable load for a simulated
// minute and checks that the monitor admits about what the server can do and
// that the queue stays bounded: it does not grow with the excess.
func TestSustainedOverload(t *testing.T) {
	tests := []struct {
		name     string
		opts     Options
		workers  int
		service  time.Duration
		maxQueue int // bound on the queue after the warm-up
	}{
		{
			name:    "sprout defaults, one fast worker",
			opts:    Options{},                    // 10ms target, 1000 tokens, 250/s initial
			workers: 1, service: time.Millisecond, // 1000/s sustainable
			maxQueue: 100,
		},
		{
			name:    "homestead-like, four slow workers",
			opts:    Options{TargetLatency: 100 * time.Millisecond, MaxTokens: 200, InitRate: 50},
			workers: 4, service: 20 * time.Millisecond, // 200/s sustainable
			maxQueue: 100,
		},
		{
			name:    "tight queue timeout",
			opts:    Options{QueueTimeout: 50 * time.Millisecond, InitRate: 2000},
			workers: 2, service: 4 * time.Millisecond, // 500/s sustainable
			maxQueue: 50,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clk := newFakeClock()
			tc.opts.Clock = clk.Now
			m := mustNew(t, tc.opts)
			capacity := float64(tc.workers) / tc.service.Seconds()
			res := simulate(m, clk, 2*capacity, tc.workers, tc.service, 10*time.Second, 70*time.Second)
			t.Logf("capacity %.0f/s offered %.0f/s: admitted %.1f/s processed %.1f/s expired %d max queue %d (%d after warm-up) final rate %.1f",
				capacity, 2*capacity, res.admittedRate, res.processedRate, res.expired, res.maxQueue, res.maxQueueWarm, res.finalRate)
			// Multiplicative decrease on a lagging latency signal gives a
			// sawtooth below capacity (as in Sprout): allow 25% under.
			if res.admittedRate < 0.75*capacity || res.admittedRate > 1.1*capacity {
				t.Errorf("admitted %.1f/s, want between 75%% and 110%% of the sustainable %.0f/s", res.admittedRate, capacity)
			}
			if res.processedRate < 0.75*capacity {
				t.Errorf("processed %.1f/s, want at least 75%% of the sustainable %.0f/s", res.processedRate, capacity)
			}
			if res.maxQueueWarm > tc.maxQueue {
				t.Errorf("queue reached %d after warm-up, want at most %d", res.maxQueueWarm, tc.maxQueue)
			}
		})
	}
}
