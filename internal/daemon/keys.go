package daemon

import (
	"bytes"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"os"
)

// LoadSigningKey reads an ed25519 private key: PEM (PKCS#8, as `openssl
// genpkey -algorithm ed25519` writes it), or a 32-byte seed or 64-byte key,
// raw, hex or base64 (a Kubernetes Secret mounted as a file).
func LoadSigningKey(path string) (ed25519.PrivateKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if block, _ := pem.Decode(data); block != nil {
		k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		priv, ok := k.(ed25519.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("%s: a %T, not an ed25519 key", path, k)
		}
		return priv, nil
	}
	mismatch := false
	for _, raw := range decodings(data) {
		switch len(raw) {
		case ed25519.SeedSize:
			return ed25519.NewKeyFromSeed(raw), nil
		case ed25519.PrivateKeySize:
			// A 64-byte key is the seed and its public key: a public half
			// that is not the seed's would sign entries that no one can
			// verify, with the key's own public key or any other.
			k := ed25519.NewKeyFromSeed(raw[:ed25519.SeedSize])
			if bytes.Equal(k[ed25519.SeedSize:], raw[ed25519.SeedSize:]) {
				return k, nil
			}
			mismatch = true
		}
	}
	if mismatch {
		return nil, fmt.Errorf("%s: a 64-byte ed25519 key whose second half is not the public key of its first (the seed): damaged", path)
	}
	return nil, fmt.Errorf("%s: not an ed25519 private key (want PEM PKCS#8, or a 32-byte seed or 64-byte key, raw, hex or base64)", path)
}

// LoadPublicKey reads an ed25519 public key: PEM (PKIX, as `openssl pkey
// -pubout` and `flowaudit keygen` write it), or 32 bytes raw, hex or
// base64.
func LoadPublicKey(path string) (ed25519.PublicKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if block, _ := pem.Decode(data); block != nil {
		if block.Type == "PRIVATE KEY" {
			return nil, fmt.Errorf("%s: a private key, not a public one (`flowaudit pubkey --signing-key %s` prints its public key)", path, path)
		}
		k, err := x509.ParsePKIXPublicKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		pub, ok := k.(ed25519.PublicKey)
		if !ok {
			return nil, fmt.Errorf("%s: a %T, not an ed25519 key", path, k)
		}
		return pub, nil
	}
	for _, raw := range decodings(data) {
		if len(raw) == ed25519.PublicKeySize {
			return ed25519.PublicKey(raw), nil
		}
	}
	return nil, fmt.Errorf("%s: not an ed25519 public key (want PEM, or 32 bytes raw, hex or base64)", path)
}

// decodings returns the interpretations of a key file: hex, base64, raw.
func decodings(data []byte) [][]byte {
	var out [][]byte
	s := string(bytes.TrimSpace(data))
	if b, err := hex.DecodeString(s); err == nil {
		out = append(out, b)
	}
	if b, err := base64.StdEncoding.DecodeString(s); err == nil {
		out = append(out, b)
	}
	return append(out, data)
}

// MarshalPrivateKey is priv as PEM PKCS#8, the form `openssl genpkey
// -algorithm ed25519` writes and LoadSigningKey reads.
func MarshalPrivateKey(priv ed25519.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// MarshalPublicKey is pub as PEM PKIX, the form `openssl pkey -pubout`
// writes and LoadPublicKey reads.
func MarshalPublicKey(pub ed25519.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), nil
}
