package kvtest

import (
	"context"
	"testing"
)

func TestSiteStoresRecords(t *testing.T) {
	s := New(t, 2)
	ctx := context.Background()
	if _, err := s.KV.Put(ctx, "a/b", []byte("v")); err != nil {
		t.Fatal(err)
	}
	rec, err := s.KV.Get(ctx, "a/b")
	if err != nil || string(rec.Value) != "v" {
		t.Fatalf("got %q, %v", rec.Value, err)
	}
}
