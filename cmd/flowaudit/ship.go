package main

import (
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/flowaudit/flowaudit/internal/daemon"
	"github.com/flowaudit/flowaudit/pkg/archive"
	"github.com/flowaudit/flowaudit/pkg/objstore"
	"github.com/flowaudit/flowaudit/pkg/ship"
)

func init() { subcommands = append(subcommands, newShipCmd) }

func newShipCmd() *cobra.Command {
	var root, to, endpoint, lockMode string
	var lockRetain daemon.Duration
	var attempts int
	cmd := &cobra.Command{
		Use:   "ship --archive DIR --to s3://BUCKET/PREFIX",
		Short: "Copy an archive's files and manifests to S3-compatible object storage",
		Long: `ship copies what the archive's manifests vouch for to s3://BUCKET/PREFIX, in the
archive's own layout, so that the bucket is itself an archive: flowaudit verify,
report and DuckDB read it in place. Each data file is uploaded with the SHA-256
its manifest entry records, which the server checks before storing it; a
manifest's complete lines go after the files they name. What was shipped is
recorded in DIR/_ship/; running ship again uploads only what is new, and after
a crash re-uploads the same bytes to the same keys, which changes nothing.

Credentials and endpoint come from the AWS SDK's default chain: AWS_ACCESS_KEY_ID
and AWS_SECRET_ACCESS_KEY, AWS_PROFILE and the shared config files, web identity
(IRSA), ECS and EC2 roles; AWS_REGION (default us-east-1); AWS_ENDPOINT_URL (or
--endpoint) for an S3-compatible server (MinIO, Ceph RGW, versitygw), addressed
path-style when its host is an IP address or localhost; AWS_CA_BUNDLE for a
private CA.

With --object-lock-mode, every object is put under S3 Object Lock (the bucket
must have it enabled) until --object-lock-retain after its upload.

The daemon ships by itself with archive.upload in its configuration; ship is for
archives made by import, or to copy an archive to another bucket. Exit status:
0 when everything is shipped, 1 on an error (what came before it is shipped).`,
		Example: `  AWS_ENDPOINT_URL=http://127.0.0.1:7070 AWS_ACCESS_KEY_ID=… AWS_SECRET_ACCESS_KEY=… AWS_REGION=us-east-1 \
    flowaudit ship --archive ./archive --to s3://audit/prod-kr1
  flowaudit ship --archive /var/lib/flowaudit/archive --to s3://audit-worm/prod-kr1 --object-lock-mode COMPLIANCE --object-lock-retain 400d`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			loc, err := objstore.ParseURL(to)
			if err != nil {
				return fmt.Errorf("--to: %w", err)
			}
			if !archive.IsArchive(root) {
				return fmt.Errorf("--archive %s: not an archive (no flows/ directory)", root)
			}
			if attempts < 1 {
				return fmt.Errorf("--attempts %d: want at least 1", attempts)
			}
			if (lockMode == "") != (lockRetain == 0) {
				return errors.New("--object-lock-mode and --object-lock-retain go together")
			}
			ctx := cmd.Context()
			client, err := objstore.New(ctx, objstore.Options{Endpoint: endpoint})
			if err != nil {
				return err
			}
			s, err := ship.New(ship.Config{Root: root, To: loc, Client: client, LockMode: lockMode, LockRetain: time.Duration(lockRetain),
				Log: newCLILogger(cmd.ErrOrStderr())})
			if err != nil {
				return err
			}
			var total ship.Result
			for i := 1; ; i++ {
				res, err := s.Once(ctx)
				total.Files += res.Files
				total.Manifests += res.Manifests
				total.Bytes += res.Bytes
				total.Skipped += res.Skipped
				if err == nil || i == attempts || ctx.Err() != nil {
					fmt.Fprintf(cmd.OutOrStdout(), "shipped to %s: %d files, %d manifests, %d bytes; %d files named by manifests but merged or retired locally\n",
						loc, total.Files, total.Manifests, total.Bytes, total.Skipped)
					return err
				}
				wait := time.Duration(1<<min(i-1, 5)) * time.Second
				fmt.Fprintf(cmd.ErrOrStderr(), "flowaudit: ship: %v; again in %v (attempt %d of %d)\n", err, wait, i+1, attempts)
				select {
				case <-ctx.Done():
				case <-time.After(wait):
				}
			}
		},
	}
	f := cmd.Flags()
	f.StringVar(&root, "archive", "", "the archive root to ship (required)")
	f.StringVar(&to, "to", "", "destination, s3://BUCKET[/PREFIX] (required)")
	f.StringVar(&endpoint, "endpoint", "", "S3-compatible endpoint URL (default: AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL, or AWS)")
	f.StringVar(&lockMode, "object-lock-mode", "", "S3 Object Lock for every object: COMPLIANCE or GOVERNANCE")
	f.Var(&lockRetain, "object-lock-retain", "how long Object Lock retains each object from its upload, e.g. 400d")
	f.IntVar(&attempts, "attempts", 5, "passes to try, with backoff, before giving up on an error")
	_ = cmd.MarkFlagRequired("archive")
	_ = cmd.MarkFlagRequired("to")
	return cmd
}
