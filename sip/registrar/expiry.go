package registrar

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"stillwater/diameter/hss"
	"stillwater/timerwheel"
)

// onTimer handles a pop of a record's expiry timer.
func (r *Registrar) onTimer(ctx context.Context, p timerwheel.Pop) error {
	return r.expire(ctx, string(p.Opaque))
}

// expire removes the bindings and subscriptions of key that have expired by
// the registrar's clock, notifies, and re-arms the timer for what is left.
// A binding refreshed since the timer was set is not expired, so a refresh
// racing the pop wins.
func (r *Registrar) expire(ctx context.Context, key string) error {
	now := r.nowMs()
	var pend []pending
	lastGone := false
	_, err := r.update(ctx, key, func(rec *aorRecord, exists bool) error {
		pend, lastGone = nil, false
		if !exists {
			return nil
		}
		ch := newChanges()
		had := len(rec.Bindings) > 0
		dropExpired(rec, now, ch)
		for _, s := range rec.Subs {
			if s.Expires <= now {
				ch.ended[s.ID] = "timeout"
			}
		}
		if had && len(rec.Bindings) == 0 {
			lastGone = true
			ch.endSubs(rec, "noresource")
		}
		if !ch.any() {
			// Popped early (clocks differ between nodes) or already
			// handled: writing the record unchanged re-arms its timer.
			return nil
		}
		pend = r.stage(rec, now, ch, nil)
		return nil
	})
	if err != nil {
		return fmt.Errorf("registrar: expire %s: %w", key, err)
	}
	if lastGone {
		r.hssDereg(ctx, key, key, hss.ReqDeregTimeout)
	}
	r.dispatch(key, pend)
	return nil
}

// Deregister removes every binding of impu's registration set, emergency
// ones included (an administrative de-registration): subscribers are told
// the contacts were deactivated and their subscriptions end, and the HSS
// releases the set (dereg-admin). A set with no bindings is ErrNotFound.
func (r *Registrar) Deregister(ctx context.Context, impu string) error {
	t, err := r.resolve(ctx, impu)
	if errors.Is(err, hss.ErrNotFound) {
		return fmt.Errorf("%w: %s is not provisioned", ErrNotFound, impu)
	}
	if err != nil {
		return fmt.Errorf("registrar: deregister %s: %w", impu, err)
	}
	now := r.nowMs()
	var pend []pending
	_, err = r.update(ctx, t.key, func(rec *aorRecord, _ bool) error {
		pend = nil
		ch := newChanges()
		if !dropExpired(rec, now, ch) {
			return fmt.Errorf("%w: %s has no bindings", ErrNotFound, impu)
		}
		for i := len(rec.Bindings) - 1; i >= 0; i-- {
			ch.remove(rec, i, "deactivated")
		}
		rec.Bindings = nil
		ch.endSubs(rec, "noresource")
		slices.Reverse(ch.gone)
		pend = r.stage(rec, now, ch, nil)
		return nil
	})
	if err != nil {
		var ae abortError
		if errors.As(err, &ae) {
			return ae.err
		}
		return err
	}
	r.hssDereg(ctx, t.key, impu, hss.ReqDeregAdmin)
	r.dispatch(t.key, pend)
	return nil
}
