package executor

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"

	"github.com/taskwire/taskwire/queue"
)

// secretKeyName is the config-bucket key of the shared secret key, used
// when the executor is given none.
const secretKeyName = "secret_key"

// sealedPrefix starts every value sealed at rest; its version names the
// scheme: AES-256-GCM, a 12-byte random nonce, the bucket and key as
// additional data.
var sealedPrefix = []byte("twenc1:")

// ErrSealed is returned when a value sealed at rest cannot be opened: it
// was sealed with another key, or changed.
var ErrSealed = errors.New("sealed value cannot be opened (another secret key?)")

// sealer encrypts the values of the connections and variables buckets at
// rest, so neither the KV's files nor a NATS user reading the bucket sees
// a password.
type sealer struct{ aead cipher.AEAD }

// newSealer derives an AES-256 key from secret (at least 32 bytes of
// high-entropy material) with HKDF-SHA256.
func newSealer(secret []byte) (*sealer, error) {
	if len(secret) < 32 {
		return nil, errors.New("secret key must have at least 32 bytes")
	}
	key, err := hkdf.Key(sha256.New, secret, nil, "taskwire secrets at rest v1", 32)
	if err != nil {
		return nil, fmt.Errorf("derive secret key: %w", err)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("secret key: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("secret key: %w", err)
	}
	return &sealer{aead: aead}, nil
}

func aad(bucket, key string) []byte { return []byte(bucket + "/" + key) }

// seal encrypts plain, stored under key of bucket.
func (s *sealer) seal(bucket, key string, plain []byte) []byte {
	nonce := make([]byte, s.aead.NonceSize(), len(sealedPrefix)+s.aead.NonceSize()+len(plain)+s.aead.Overhead())
	_, _ = rand.Read(nonce) // crypto/rand.Read never fails
	out := append(append([]byte(nil), sealedPrefix...), nonce...)
	return s.aead.Seal(out, nonce, plain, aad(bucket, key))
}

// open decrypts a value read from key of bucket. A value without the
// sealed prefix was stored in plain text before values were sealed, and is
// returned as it is; it is sealed when next written.
func (s *sealer) open(bucket, key string, data []byte) ([]byte, error) {
	if !bytes.HasPrefix(data, sealedPrefix) {
		return data, nil
	}
	data = data[len(sealedPrefix):]
	n := s.aead.NonceSize()
	if len(data) < n+s.aead.Overhead() {
		return nil, fmt.Errorf("%s %s: %w", bucket, key, ErrSealed)
	}
	plain, err := s.aead.Open(nil, data[:n], data[n:], aad(bucket, key))
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", bucket, key, ErrSealed)
	}
	return plain, nil
}

// getSealed reads and opens key of kv.
func (e *Executor) getSealed(ctx context.Context, kv queue.Bucket, key string) ([]byte, error) {
	ent, err := kv.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	return e.sealer.open(kv.Name(), key, ent.Value())
}

// putSealed seals and writes value under key of kv.
func (e *Executor) putSealed(ctx context.Context, kv queue.Bucket, key string, value []byte) error {
	_, err := kv.Put(ctx, key, e.sealer.seal(kv.Name(), key, value))
	return err
}

// sharedSecretKey reads the secret key from the config bucket, creating a
// random one if none exists, so every executor on the NATS seals alike.
func (e *Executor) sharedSecretKey(ctx context.Context) ([]byte, error) {
	return e.sharedKey(ctx, secretKeyName)
}

// sharedKey reads a random 32-byte key from the config bucket, creating it
// if it does not exist.
func (e *Executor) sharedKey(ctx context.Context, name string) ([]byte, error) {
	kv := e.q.Bucket(queue.BucketConfig)
	for range 3 {
		ent, err := kv.Get(ctx, name)
		if err == nil {
			return ent.Value(), nil
		}
		if !errors.Is(err, queue.ErrKeyNotFound) {
			return nil, fmt.Errorf("executor: read %s: %w", name, err)
		}
		key := make([]byte, 32)
		_, _ = rand.Read(key)
		if _, err := kv.Create(ctx, name, key); err == nil {
			return key, nil
		} else if !errors.Is(err, queue.ErrKeyExists) {
			return nil, fmt.Errorf("executor: store %s: %w", name, err)
		}
	}
	return nil, fmt.Errorf("executor: %s: lost the race three times", name)
}
