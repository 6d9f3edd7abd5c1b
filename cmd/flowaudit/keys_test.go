package main

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flowaudit/flowaudit/pkg/archive"
)

// runCmd runs the CLI with args and returns what it printed.
func runCmd(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	cmd := newRootCmd()
	cmd.SetArgs(args)
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	err := cmd.Execute()
	return out.String(), err
}

// signedArchive imports a few generated flows into a new archive, signed
// with keyFile, and returns the archive's root.
func signedArchive(t *testing.T, dir, keyFile string) string {
	t.Helper()
	root := filepath.Join(dir, "archive")
	events := filepath.Join(dir, "events.log")
	out, err := runCmd(t, "gen", "--nodes", "1", "--rate", "5", "--count", "50", "--start", "2026-01-01T00:00:00Z")
	if err != nil {
		t.Fatal(err)
	}
	write(t, events, []byte(out))
	if out, err := runCmd(t, "import", "--progress", "never", "--archive", root, "--signing-key", keyFile, events); err != nil {
		t.Fatalf("import: %v\n%s", err, out)
	}
	return root
}

// verifyWith runs verify --public-key pubFile on root: nil when the
// signatures check.
func verifyWith(t *testing.T, root, pubFile string) error {
	t.Helper()
	out, err := runCmd(t, "verify", "--archive", root, "--public-key", pubFile)
	if err != nil {
		t.Logf("verify --public-key %s: %s", filepath.Base(pubFile), out)
	}
	return err
}

// TestVerifyReadsEveryPublicKeyForm: verify --public-key reads the public
// key in PEM PKIX (Go's x509 and, when openssl is installed, `openssl pkey
// -pubout` of the key import signed with: it used to want hex only) and as
// hex, base64 and raw bytes; a key that did not sign fails the check, and
// a private key given as the public one is refused with the way out.
func TestVerifyReadsEveryPublicKeyForm(t *testing.T) {
	dir := t.TempDir()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(dir, "go.key")
	write(t, keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	root := signedArchive(t, filepath.Join(dir, "go"), keyFile)
	pkix, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{
		"pem.pub":    pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pkix}),
		"hex.pub":    []byte(hex.EncodeToString(pub) + "\n"),
		"base64.pub": []byte(base64.StdEncoding.EncodeToString(pub)),
		"raw.pub":    pub,
	} {
		write(t, filepath.Join(dir, name), data)
		if err := verifyWith(t, root, filepath.Join(dir, name)); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	other, _, _ := ed25519.GenerateKey(rand.Reader)
	write(t, filepath.Join(dir, "other.pub"), []byte(hex.EncodeToString(other)))
	if err := verifyWith(t, root, filepath.Join(dir, "other.pub")); err == nil || exitCode(err) != 2 {
		t.Errorf("another key's signatures: %v, want findings (exit 2)", err)
	}
	if err := verifyWith(t, root, keyFile); err == nil || !strings.Contains(err.Error(), "a private key, not a public one") {
		t.Errorf("a private key as --public-key: %v", err)
	}

	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("no openssl: the keys openssl writes are not tried")
	}
	osslKey, osslPub := filepath.Join(dir, "openssl.key"), filepath.Join(dir, "openssl.pub")
	for _, args := range [][]string{
		{"genpkey", "-algorithm", "ed25519", "-out", osslKey},
		{"pkey", "-in", osslKey, "-pubout", "-out", osslPub},
	} {
		if out, err := exec.Command("openssl", args...).CombinedOutput(); err != nil {
			t.Skipf("openssl %s: %v\n%s", args[0], err, out)
		}
	}
	root = signedArchive(t, filepath.Join(dir, "openssl"), osslKey)
	if err := verifyWith(t, root, osslPub); err != nil {
		t.Errorf("openssl pkey -pubout's key: %v", err)
	}
}

// TestKeygenAndPubkey: keygen writes a key pair that import signs with and
// verify checks with (and openssl reads, when installed), the private key
// mode 0600; it refuses to overwrite either file and then leaves nothing
// behind; pubkey prints the same public key, from the private key in any
// form the other commands read, with the key id the manifests carry.
func TestKeygenAndPubkey(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "sign.key")
	out, err := runCmd(t, "keygen", "--out", key)
	if err != nil {
		t.Fatalf("keygen: %v\n%s", err, out)
	}
	for path, mode := range map[string]os.FileMode{key: 0o600, key + ".pub": 0o644} {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm()&^mode != 0 || fi.Mode().Perm()&0o600 != 0o600 {
			t.Errorf("%s: mode %v, want %v", path, fi.Mode().Perm(), mode)
		}
	}
	privPEM, pubPEM := read(t, key), read(t, key+".pub")
	root := signedArchive(t, dir, key)
	if err := verifyWith(t, root, key+".pub"); err != nil {
		t.Fatalf("verify with keygen's public key: %v", err)
	}
	rep, err := archive.Verify(root, time.Time{}, time.Time{}, nil)
	if err != nil || len(rep.KeyIDs) != 1 || !strings.Contains(out, "key id      "+rep.KeyIDs[0]+"\n") {
		t.Errorf("keygen printed %q; the archive's key ids %v (%v)", out, rep.KeyIDs, err)
	}

	// Never overwrite: either file existing refuses, and a refusal creates
	// nothing.
	if out, err := runCmd(t, "keygen", "--out", key); err == nil || !strings.Contains(err.Error(), "exists; not overwriting it") {
		t.Errorf("keygen over an existing key: %v\n%s", err, out)
	}
	if !bytes.Equal(read(t, key), privPEM) || !bytes.Equal(read(t, key+".pub"), pubPEM) {
		t.Error("keygen changed an existing key pair")
	}
	lone := filepath.Join(dir, "lone.key")
	write(t, lone+".pub", []byte("x"))
	if _, err := runCmd(t, "keygen", "--out", lone); err == nil {
		t.Error("keygen overwrote an existing .pub")
	}
	if _, err := os.Stat(lone); !os.IsNotExist(err) {
		t.Errorf("a refused keygen left %s behind (%v)", lone, err)
	}

	// pubkey: the same public key from PEM and from a hex seed.
	out, err = runCmd(t, "pubkey", "--signing-key", key)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out, string(pubPEM)) || !strings.HasSuffix(out, "key id "+rep.KeyIDs[0]+"\n") {
		t.Errorf("pubkey printed %q, want %q and key id %s", out, pubPEM, rep.KeyIDs[0])
	}
	saved := filepath.Join(dir, "saved.pub")
	write(t, saved, []byte(out))
	if err := verifyWith(t, root, saved); err != nil {
		t.Errorf("pubkey's output as --public-key: %v", err)
	}
	block, _ := pem.Decode(privPEM)
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	seed := filepath.Join(dir, "seed.hex")
	write(t, seed, []byte(hex.EncodeToString(k.(ed25519.PrivateKey).Seed())))
	if out2, err := runCmd(t, "pubkey", "--signing-key", seed); err != nil || out2 != out {
		t.Errorf("pubkey of the hex seed: %q, %v; want %q", out2, err, out)
	}

	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("no openssl: keygen's files are not read with it")
	}
	ossl, err := exec.Command("openssl", "pkey", "-in", key, "-pubout").CombinedOutput()
	if err != nil {
		t.Fatalf("openssl cannot read keygen's private key: %v\n%s", err, ossl)
	}
	if !bytes.Equal(ossl, pubPEM) {
		t.Errorf("openssl's public key of keygen's private key:\n%s\nkeygen's:\n%s", ossl, pubPEM)
	}
	if out, err := exec.Command("openssl", "pkey", "-pubin", "-in", saved, "-noout").CombinedOutput(); err != nil {
		t.Errorf("openssl cannot read pubkey's output: %v\n%s", err, out)
	}
}

func write(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

func read(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
