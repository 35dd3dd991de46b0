package ellis

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
)

func TestNumbersCommand(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	run := func(args ...string) (string, error) {
		var out bytes.Buffer
		err := NumbersCommand(ctx, args, &out, e.s)
		return out.String(), err
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"create", "--start", "6505550000", "--count", "5"}, "Created 5 numbers, 0 already present\n"},
		{[]string{"create", "--start", "6505550000", "--count", "5"}, "Created 0 numbers, 5 already present\n"},
		{[]string{"create", "-s", "6505550003", "-c", "4"}, "Created 2 numbers, 2 already present\n"},
		{[]string{"create", "--count=2", "--pstn"}, "Created 2 numbers, 0 already present\n"},
		{[]string{"create", "--start", "6505550000", "--realm", "other.example.org"}, "Created 1 numbers, 0 already present\n"},
	} {
		got, err := run(tc.args...)
		if err != nil || got != tc.want {
			t.Fatalf("%v: %q, %v; want %q", tc.args, got, err, tc.want)
		}
	}
	for _, uri := range []string{"sip:6505550006@example.com", "sip:+15108580272@example.com", "sip:6505550000@other.example.org"} {
		n, _, err := e.s.numbers.Get(ctx, uri)
		if err != nil || n.URI != uri || n.Owner != "" {
			t.Fatalf("%s: %+v, %v", uri, n, err)
		}
	}
	for _, args := range [][]string{nil, {"destroy"}, {"create", "--count", "0"}, {"create", "--start", "x"}, {"create", "extra"}, {"create", "--realm", "bad realm"}} {
		if _, err := run(args...); err == nil {
			t.Errorf("%v: no error", args)
		}
	}
	if out, err := run("create", "-h"); err != nil || !strings.Contains(out, "usage:") {
		t.Fatalf("help: %q, %v", out, err)
	}

	// A failure is reported with what was done.
	failing := CreateNumbersFunc(func(context.Context, int64, int64, bool, string) (int, int, error) {
		return 3, 1, errors.New("no quorum")
	})
	var out bytes.Buffer
	if err := NumbersCommand(ctx, []string{"create", "--count", "9"}, &out, failing); err == nil || !strings.Contains(err.Error(), "no quorum") {
		t.Fatalf("failure reported as %v", err)
	}
}

// TestCreateNumbersRepairsFreeList: a number freed but left off the free
// list by an interrupted release is put back by re-running create.
func TestCreateNumbersRepairsFreeList(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	e.numbers(6505550000, 2, false)
	if err := e.s.free.Delete(ctx, freeKey(false, "sip:6505550001@example.com")); err != nil {
		t.Fatal(err)
	}
	alice := e.signup("alice@example.com")
	alice.json("POST", numbersPath("alice@example.com"), nil).want(t, http.StatusOK)
	alice.json("POST", numbersPath("alice@example.com"), nil).want(t, http.StatusServiceUnavailable)
	created, present, err := e.s.CreateNumbers(ctx, 6505550000, 2, false, "")
	if err != nil || created != 0 || present != 2 {
		t.Fatalf("re-run: %d created, %d present, %v", created, present, err)
	}
	r := alice.json("POST", numbersPath("alice@example.com"), nil).want(t, http.StatusOK)
	if r.str("sip_uri") != "sip:6505550001@example.com" {
		t.Fatalf("got %s", r.body)
	}
}
