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
	for _, raw := range decodings(data) {
		switch len(raw) {
		case ed25519.SeedSize:
			return ed25519.NewKeyFromSeed(raw), nil
		case ed25519.PrivateKeySize:
			return ed25519.PrivateKey(raw), nil
		}
	}
	return nil, fmt.Errorf("%s: not an ed25519 private key (want PEM PKCS#8, or a 32-byte seed or 64-byte key, raw, hex or base64)", path)
}

// LoadPublicKey reads an ed25519 public key: PEM (PKIX), or 32 bytes raw,
// hex or base64.
func LoadPublicKey(path string) (ed25519.PublicKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if block, _ := pem.Decode(data); block != nil {
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
