package kv

import (
	"context"
	"encoding"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// Codec turns a table's values into bytes and back.
type Codec[T any] interface {
	Marshal(v T) ([]byte, error)
	Unmarshal(data []byte, v *T) error
}

// JSONCodec encodes values with encoding/json; tables use it by default.
type JSONCodec[T any] struct{}

// Marshal implements Codec.
func (JSONCodec[T]) Marshal(v T) ([]byte, error) { return json.Marshal(v) }

// Unmarshal implements Codec.
func (JSONCodec[T]) Unmarshal(data []byte, v *T) error { return json.Unmarshal(data, v) }

// BinaryCodec encodes values whose pointer type implements
// encoding.BinaryMarshaler and encoding.BinaryUnmarshaler, for hot tables
// with hand-written formats: NewTable(s, "reg", BinaryCodec[Reg, *Reg]{}).
type BinaryCodec[T any, P interface {
	*T
	encoding.BinaryMarshaler
	encoding.BinaryUnmarshaler
}] struct{}

// Marshal implements Codec.
func (BinaryCodec[T, P]) Marshal(v T) ([]byte, error) { return P(&v).MarshalBinary() }

// Unmarshal implements Codec.
func (BinaryCodec[T, P]) Unmarshal(data []byte, v *T) error { return P(v).UnmarshalBinary(data) }

// Table is a typed view of the records whose keys start with "name/".
type Table[T any] struct {
	svc    *Service
	name   string
	prefix string
	codec  Codec[T]
}

// NewTable returns the table name over s; a nil codec means JSONCodec. The
// name must be non-empty and contain no '/'.
func NewTable[T any](s *Service, name string, codec Codec[T]) *Table[T] {
	if name == "" || strings.Contains(name, "/") {
		panic(fmt.Sprintf("kv: bad table name %q", name))
	}
	if codec == nil {
		codec = JSONCodec[T]{}
	}
	return &Table[T]{svc: s, name: name, prefix: name + "/", codec: codec}
}

// Name returns the table's name.
func (t *Table[T]) Name() string { return t.name }

// Key returns the full key of a table key, as raw Service calls and the
// change feed see it.
func (t *Table[T]) Key(key string) string { return t.prefix + key }

// Get returns the value under key and its version, or ErrNotFound.
func (t *Table[T]) Get(ctx context.Context, key string, opts ...ReadOption) (T, Version, error) {
	var v T
	rec, err := t.svc.Get(ctx, t.prefix+key, opts...)
	if err != nil {
		return v, 0, err
	}
	if err := t.codec.Unmarshal(rec.Value, &v); err != nil {
		return v, 0, fmt.Errorf("kv: %s: decode %q: %w", t.name, key, err)
	}
	return v, rec.Version, nil
}

// Put stores v under key unconditionally.
func (t *Table[T]) Put(ctx context.Context, key string, v T) (Version, error) {
	return t.PutTTL(ctx, key, v, 0)
}

// PutTTL stores v under key, expiring ttl after the write commits (0: never).
func (t *Table[T]) PutTTL(ctx context.Context, key string, v T, ttl time.Duration) (Version, error) {
	data, err := t.codec.Marshal(v)
	if err != nil {
		return 0, fmt.Errorf("kv: %s: encode %q: %w", t.name, key, err)
	}
	return t.svc.PutTTL(ctx, t.prefix+key, data, ttl)
}

// CAS stores v under key if its current version is ifVersion (0: must not
// exist); otherwise it returns a *ConflictError (errors.Is(err, ErrConflict)).
func (t *Table[T]) CAS(ctx context.Context, key string, v T, ttl time.Duration, ifVersion Version) (Version, error) {
	data, err := t.codec.Marshal(v)
	if err != nil {
		return 0, fmt.Errorf("kv: %s: encode %q: %w", t.name, key, err)
	}
	return t.svc.CompareAndSet(ctx, t.prefix+key, data, ttl, ifVersion)
}

// Delete removes key; an absent key is not an error.
func (t *Table[T]) Delete(ctx context.Context, key string) error {
	return t.svc.Delete(ctx, t.prefix+key)
}

// DeleteIf removes key if its version is version.
func (t *Table[T]) DeleteIf(ctx context.Context, key string, version Version) error {
	return t.svc.DeleteIf(ctx, t.prefix+key, version)
}

// Scan calls fn for every live record of the table whose key starts with
// prefix, across all shards (see Service.Scan). Keys are given without the
// table name.
func (t *Table[T]) Scan(ctx context.Context, prefix string, fn func(key string, v T, version Version) error, opts ...ReadOption) error {
	return t.svc.Scan(ctx, t.prefix+prefix, func(r Record) error {
		var v T
		if err := t.codec.Unmarshal(r.Value, &v); err != nil {
			return fmt.Errorf("kv: %s: decode %q: %w", t.name, r.Key, err)
		}
		return fn(strings.TrimPrefix(r.Key, t.prefix), v, r.Version)
	}, opts...)
}
