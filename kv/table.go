package kv

import (
	"context"
	"encoding"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
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
	cache  *decoded[T] // nil unless WithCache
}

// decoded keeps values this process decoded or wrote, by key and version. A
// version names one content of a key for ever (versions only grow within a
// shard), so a cached value whose version matches the record just read is
// that record's value: reads stay linearizable and skip only the decoding.
type decoded[T any] struct {
	clone    func(T) T
	maxBytes int

	mu    sync.Mutex
	m     map[string]decodedEntry[T]
	bytes int
}

type decodedEntry[T any] struct {
	version Version
	size    int
	v       T
}

func (d *decoded[T]) get(key string, version Version) (T, bool) {
	d.mu.Lock()
	e, ok := d.m[key]
	d.mu.Unlock()
	if !ok || e.version != version {
		var zero T
		return zero, false
	}
	return d.clone(e.v), true
}

// put remembers v (which the cache owns from now on) as key's value at version.
func (d *decoded[T]) put(key string, version Version, size int, v T) {
	size += len(key) + 64
	d.mu.Lock()
	defer d.mu.Unlock()
	if old, ok := d.m[key]; ok {
		if old.version > version {
			return // a newer write got here first
		}
		d.bytes -= old.size
	}
	for k, e := range d.m {
		if d.bytes+size <= d.maxBytes {
			break
		}
		delete(d.m, k) // map order is random enough for an eviction policy
		d.bytes -= e.size
	}
	d.m[key] = decodedEntry[T]{version: version, size: size, v: v}
	d.bytes += size
}

func (d *decoded[T]) forget(key string) {
	d.mu.Lock()
	if e, ok := d.m[key]; ok {
		delete(d.m, key)
		d.bytes -= e.size
	}
	d.mu.Unlock()
}

// WithCache makes the table keep up to maxBytes (by encoded size) of decoded
// values, for hot tables whose decoding costs more than the read. clone must
// return a copy that shares nothing mutable with its argument: callers get
// and give away values they may modify. It returns t.
func (t *Table[T]) WithCache(maxBytes int, clone func(T) T) *Table[T] {
	t.cache = &decoded[T]{clone: clone, maxBytes: maxBytes, m: map[string]decodedEntry[T]{}}
	return t
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
	if t.cache != nil {
		if v, ok := t.cache.get(key, rec.Version); ok {
			return v, rec.Version, nil
		}
	}
	if err := t.codec.Unmarshal(rec.Value, &v); err != nil {
		return v, 0, fmt.Errorf("kv: %s: decode %q: %w", t.name, key, err)
	}
	if t.cache != nil {
		t.cache.put(key, rec.Version, len(rec.Value), t.cache.clone(v))
	}
	return v, rec.Version, nil
}

// remember caches what a successful write stored.
func (t *Table[T]) remember(key string, ver Version, data []byte, v T, err error) {
	if t.cache != nil && err == nil {
		t.cache.put(key, ver, len(data), t.cache.clone(v))
	}
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
	ver, err := t.svc.PutTTL(ctx, t.prefix+key, data, ttl)
	t.remember(key, ver, data, v, err)
	return ver, err
}

// CAS stores v under key if its current version is ifVersion (0: must not
// exist); otherwise it returns a *ConflictError (errors.Is(err, ErrConflict)).
func (t *Table[T]) CAS(ctx context.Context, key string, v T, ttl time.Duration, ifVersion Version, opts ...WriteOption) (Version, error) {
	data, err := t.codec.Marshal(v)
	if err != nil {
		return 0, fmt.Errorf("kv: %s: encode %q: %w", t.name, key, err)
	}
	ver, err := t.svc.CompareAndSet(ctx, t.prefix+key, data, ttl, ifVersion, opts...)
	t.remember(key, ver, data, v, err)
	return ver, err
}

// CASWith is CAS committed in one entry with also (see Rider), which is
// applied only if the compare-and-set succeeds; also's result is returned.
func (t *Table[T]) CASWith(ctx context.Context, key string, v T, ttl time.Duration, ifVersion Version, also Rider) (Version, []byte, error) {
	data, err := t.codec.Marshal(v)
	if err != nil {
		return 0, nil, fmt.Errorf("kv: %s: encode %q: %w", t.name, key, err)
	}
	ver, res, err := t.svc.CompareAndSetWith(ctx, t.prefix+key, data, ttl, ifVersion, also)
	t.remember(key, ver, data, v, err)
	return ver, res, err
}

// DeleteIfWith is DeleteIf committed in one entry with also.
func (t *Table[T]) DeleteIfWith(ctx context.Context, key string, version Version, also Rider) ([]byte, error) {
	if t.cache != nil {
		t.cache.forget(key)
	}
	return t.svc.DeleteIfWith(ctx, t.prefix+key, version, also)
}

// Shard is the shard that stores key.
func (t *Table[T]) Shard(key string) int { return t.svc.ShardOf(t.prefix + key) }

// Delete removes key; an absent key is not an error.
func (t *Table[T]) Delete(ctx context.Context, key string) error {
	if t.cache != nil {
		t.cache.forget(key)
	}
	return t.svc.Delete(ctx, t.prefix+key)
}

// DeleteIf removes key if its version is version.
func (t *Table[T]) DeleteIf(ctx context.Context, key string, version Version) error {
	if t.cache != nil {
		t.cache.forget(key)
	}
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
