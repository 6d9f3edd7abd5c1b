package daemon

import (
	"crypto/ed25519"
	"os"
	"path/filepath"
	"testing"
)

// FuzzLoadKeys: a key file as a user gives it (--signing-key-file,
// --public-key): PEM, hex, base64 or raw. A key that loads has the size of
// its kind, and a signing key's public half verifies what it signs.
func FuzzLoadKeys(f *testing.F) {
	_, priv, _ := ed25519.GenerateKey(nil)
	privPEM, _ := MarshalPrivateKey(priv)
	pubPEM, _ := MarshalPublicKey(priv.Public().(ed25519.PublicKey))
	for _, s := range [][]byte{privPEM, pubPEM, priv.Seed(), []byte("00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n"),
		[]byte("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"), {}} {
		f.Add(s)
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, b []byte) {
		path := filepath.Join(dir, "key")
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		if pub, err := LoadPublicKey(path); err == nil && len(pub) != ed25519.PublicKeySize {
			t.Fatalf("public key of %d bytes", len(pub))
		}
		priv, err := LoadSigningKey(path)
		if err != nil {
			return
		}
		if len(priv) != ed25519.PrivateKeySize {
			t.Fatalf("private key of %d bytes", len(priv))
		}
		msg := []byte("entry")
		if !ed25519.Verify(priv.Public().(ed25519.PublicKey), msg, ed25519.Sign(priv, msg)) {
			t.Fatal("the loaded key's public half does not verify its signature")
		}
	})
}
