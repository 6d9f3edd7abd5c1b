package main

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/flowaudit/flowaudit/internal/daemon"
	"github.com/flowaudit/flowaudit/pkg/archive"
)

func init() { subcommands = append(subcommands, newKeygenCmd, newPubkeyCmd) }

func newKeygenCmd() *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "keygen --out FILE",
		Short: "Write a new ed25519 key pair for signing the archive's manifests",
		Long: `keygen writes a new ed25519 private key to FILE (PEM PKCS#8, mode 0600, as
openssl genpkey -algorithm ed25519 writes it) and its public key to FILE.pub
(PEM PKIX, as openssl pkey -pubout writes it), and prints the key id that
signed manifest entries carry. It refuses to overwrite either file.

The private key is what run --signing-key-file (archive.signingKeyFile),
import --signing-key and compact --signing-key read; the public key is what
verify --public-key and run --verify-public-key-file read.`,
		Example: `  flowaudit keygen --out /etc/flowaudit/sign.key   # writes sign.key and sign.key.pub
  kubectl -n kube-system create secret generic flowaudit-signing-key --from-file=sign.key=/etc/flowaudit/sign.key`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return errors.New("--out: required")
			}
			pub, priv, err := ed25519.GenerateKey(rand.Reader)
			if err != nil {
				return fmt.Errorf("keygen: %w", err)
			}
			privPEM, err := daemon.MarshalPrivateKey(priv)
			if err != nil {
				return fmt.Errorf("keygen: %w", err)
			}
			pubPEM, err := daemon.MarshalPublicKey(pub)
			if err != nil {
				return fmt.Errorf("keygen: %w", err)
			}
			if err := writeKeyPair(out, privPEM, out+".pub", pubPEM); err != nil {
				return err
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "private key %s (mode 0600)\npublic key  %s\nkey id      %s\n", out, out+".pub", archive.KeyID(pub))
			return err
		},
	}
	cmd.Flags().StringVarP(&out, "out", "o", "", "the private key's file; the public key goes to FILE.pub (required; neither may exist)")
	return cmd
}

// writeKeyPair creates both files, neither of which may exist: a key
// overwritten is a key lost, and with it the means to sign as before (the
// private one) or to check what it signed (the public one). On failure
// nothing is left behind.
func writeKeyPair(privPath string, priv []byte, pubPath string, pub []byte) (err error) {
	for _, p := range []string{privPath, pubPath} {
		if _, err := os.Lstat(p); err == nil {
			return fmt.Errorf("keygen: %s exists; not overwriting it", p)
		}
	}
	var created []string
	defer func() {
		if err != nil {
			for _, p := range created {
				_ = os.Remove(p)
			}
		}
	}()
	for _, f := range []struct {
		path string
		data []byte
		mode os.FileMode
	}{{privPath, priv, 0o600}, {pubPath, pub, 0o644}} {
		fh, err := os.OpenFile(f.path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, f.mode)
		if err != nil {
			return fmt.Errorf("keygen: %w", err)
		}
		created = append(created, f.path)
		_, err = fh.Write(f.data)
		if serr := fh.Sync(); err == nil {
			err = serr
		}
		if cerr := fh.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("keygen: %s: %w", f.path, err)
		}
	}
	return nil
}

func newPubkeyCmd() *cobra.Command {
	var keyFile string
	cmd := &cobra.Command{
		Use:   "pubkey --signing-key FILE",
		Short: "Print the public key and key id of a signing key",
		Long: `pubkey prints the ed25519 public key of a signing key (any form the other
commands read: PEM PKCS#8, or a 32-byte seed or 64-byte key, raw, hex or
base64) as PEM PKIX, the form verify --public-key reads, followed by its key
id, the one signed manifest entries carry (key_id).`,
		Example: `  flowaudit pubkey --signing-key /etc/flowaudit/sign.key > sign.pub
  flowaudit verify --archive /var/lib/flowaudit --public-key sign.pub`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if keyFile == "" {
				return errors.New("--signing-key: required")
			}
			priv, err := daemon.LoadSigningKey(keyFile)
			if err != nil {
				return fmt.Errorf("--signing-key: %w", err)
			}
			return printPublicKey(cmd.OutOrStdout(), priv.Public().(ed25519.PublicKey))
		},
	}
	cmd.Flags().StringVar(&keyFile, "signing-key", "", "ed25519 private key file (required)")
	return cmd
}

// printPublicKey writes pub as PEM and then its key id: the id after the
// PEM block, so the output saved as a file is still a public key file for
// verify and openssl, which read the block and ignore what follows.
func printPublicKey(w io.Writer, pub ed25519.PublicKey) error {
	b, err := daemon.MarshalPublicKey(pub)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%skey id %s\n", b, archive.KeyID(pub))
	return err
}
