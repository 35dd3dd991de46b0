package timerwheel

import (
	"context"
	"slices"
	"sync"
	"time"
)

// Clock is the time source of the popping loops. Tests drive a FakeClock.
type Clock interface {
	Now() time.Time
	// AfterFunc calls f once d has elapsed; stop cancels the call if it has not
	// happened yet and reports whether it did so.
	AfterFunc(d time.Duration, f func()) (stop func() bool)
}

// SystemClock returns the Clock of the host.
func SystemClock() Clock { return systemClock{} }

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

func (systemClock) AfterFunc(d time.Duration, f func()) func() bool {
	return time.AfterFunc(d, f).Stop
}

// FakeClock is a Clock that moves only when told to. Callbacks registered with
// AfterFunc run on the goroutine that moves the clock past their time.
type FakeClock struct {
	mu     sync.Mutex
	cond   *sync.Cond
	now    time.Time
	seq    uint64
	timers []*fakeTimer
}

type fakeTimer struct {
	when time.Time
	seq  uint64
	f    func()
}

// NewFakeClock returns a FakeClock reading start.
func NewFakeClock(start time.Time) *FakeClock {
	c := &FakeClock{now: start}
	c.cond = sync.NewCond(&c.mu)
	return c
}

// Now returns the clock's current time.
func (c *FakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// AfterFunc registers f to run when the clock reaches Now()+d; with d <= 0 it
// runs f at once on the caller's goroutine.
func (c *FakeClock) AfterFunc(d time.Duration, f func()) func() bool {
	if d <= 0 {
		f()
		return func() bool { return false }
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seq++
	ft := &fakeTimer{when: c.now.Add(d), seq: c.seq, f: f}
	c.timers = append(c.timers, ft)
	c.cond.Broadcast()
	return func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		i := slices.Index(c.timers, ft)
		if i < 0 {
			return false
		}
		c.timers = slices.Delete(c.timers, i, i+1)
		return true
	}
}

// Advance moves the clock forward by d, running every callback that falls due,
// in time order, each with the clock reading its own time.
func (c *FakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	end := c.now.Add(d)
	c.mu.Unlock()
	c.AdvanceTo(end)
}

// AdvanceTo moves the clock forward to t (never back).
func (c *FakeClock) AdvanceTo(t time.Time) {
	for {
		c.mu.Lock()
		var next *fakeTimer
		for _, ft := range c.timers {
			if !ft.when.After(t) && (next == nil || ft.when.Before(next.when) ||
				(ft.when.Equal(next.when) && ft.seq < next.seq)) {
				next = ft
			}
		}
		if next == nil {
			if t.After(c.now) {
				c.now = t
			}
			c.mu.Unlock()
			return
		}
		c.timers = slices.DeleteFunc(c.timers, func(ft *fakeTimer) bool { return ft == next })
		if next.when.After(c.now) {
			c.now = next.when
		}
		c.mu.Unlock()
		next.f()
	}
}

// Pending returns the times of the callbacks not yet run, earliest first.
func (c *FakeClock) Pending() []time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.pendingLocked()
}

func (c *FakeClock) pendingLocked() []time.Time {
	out := make([]time.Time, 0, len(c.timers))
	for _, ft := range c.timers {
		out = append(out, ft.when)
	}
	slices.SortFunc(out, time.Time.Compare)
	return out
}

// WaitArmed blocks until a callback is registered for exactly t, so a test can
// move the clock knowing the code under test is waiting for that moment.
func (c *FakeClock) WaitArmed(ctx context.Context, t time.Time) error {
	stop := context.AfterFunc(ctx, func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		c.cond.Broadcast()
	})
	defer stop()
	c.mu.Lock()
	defer c.mu.Unlock()
	for {
		for _, ft := range c.timers {
			if ft.when.Equal(t) {
				return nil
			}
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		c.cond.Wait()
	}
}
