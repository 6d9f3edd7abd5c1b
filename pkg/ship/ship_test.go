package ship

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	flowpb "github.com/cilium/cilium/api/v1/flow"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/flowaudit/flowaudit/internal/s3test"
	"github.com/flowaudit/flowaudit/pkg/archive"
	"github.com/flowaudit/flowaudit/pkg/flow"
	"github.com/flowaudit/flowaudit/pkg/objstore"
)

var day = time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)

// writeArchive commits n batches of flows of two nodes into root.
func writeArchive(t *testing.T, root string, batches int) {
	t.Helper()
	w, err := archive.Open(archive.Config{Root: root}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	i := 0
	for range batches {
		b := &flow.Batch{}
		for range 200 {
			i++
			for _, node := range []string{"c/n1", "c/n2"} {
				f := b.Next()
				f.Reset()
				ts := day.Add(time.Duration(i) * time.Second)
				f.Uuid, f.Time, f.NodeName, f.Verdict = node+strconv.Itoa(i), timestamppb.New(ts), node, flowpb.Verdict_FORWARDED
				b.AddStat(node, ts.Unix()/60*60, flow.Counts{Seen: 1, Kept: 1})
			}
		}
		b.Checkpoint, b.Commit = flow.Checkpoint{Source: "test", Position: strconv.Itoa(i)}, true
		if err := w.Write(b); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

func newShipper(t *testing.T, root, dest string, mode string) *Shipper {
	t.Helper()
	loc, err := objstore.ParseURL(dest)
	if err != nil {
		t.Fatal(err)
	}
	c, err := objstore.New(context.Background(), objstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Root: root, To: loc, Client: c}
	if mode != "" {
		cfg.LockMode, cfg.LockRetain = mode, time.Hour
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// localFiles lists the archive's files a bucket copy must hold: data files
// and manifests, relative to root.
func localFiles(t *testing.T, root string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	for _, dir := range []string{"flows", "stats", "losses", "manifests"} {
		filepath.WalkDir(filepath.Join(root, dir), func(p string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() || strings.HasPrefix(d.Name(), ".tmp-") {
				return nil
			}
			rel, _ := filepath.Rel(root, p)
			b, _ := os.ReadFile(p)
			out[filepath.ToSlash(rel)] = b
			return nil
		})
	}
	return out
}

// bucketFiles lists what the server stored under prefix: its posix
// backend keeps BUCKET/KEY.
func bucketFiles(t *testing.T, srv *s3test.Server, bucket, prefix string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	base := filepath.Join(srv.Data, bucket, prefix)
	filepath.WalkDir(base, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		rel, _ := filepath.Rel(base, p)
		b, _ := os.ReadFile(p)
		out[filepath.ToSlash(rel)] = b
		return nil
	})
	return out
}

// TestShipCopiesTheArchiveOnce: every file the manifests vouch for and the
// manifests themselves reach the bucket with their bytes, in the archive's
// layout; a second pass uploads nothing; a pass after new commits uploads
// only them; a lost ledger (a crash before it was written) uploads the
// same bytes to the same keys again, changing nothing.
func TestShipCopiesTheArchiveOnce(t *testing.T) {
	srv := s3test.Start(t)
	srv.Bucket(t, "audit", false)
	root := t.TempDir()
	writeArchive(t, root, 3)
	s := newShipper(t, root, "s3://audit/prod-kr1", "")
	res, err := s.Once(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	local := localFiles(t, root)
	got := bucketFiles(t, srv, "audit", "prod-kr1")
	if len(got) != len(local) || res.Files+res.Manifests != len(local) {
		t.Fatalf("bucket holds %d objects, shipped %+v, the archive %d files", len(got), res, len(local))
	}
	for k, v := range local {
		if !bytes.Equal(got[k], v) {
			t.Errorf("%s differs in the bucket", k)
		}
	}
	if res, err := s.Once(context.Background()); err != nil || res.Files+res.Manifests != 0 {
		t.Fatalf("second pass: %+v %v", res, err)
	}
	writeArchive(t, root, 1)
	res, err = s.Once(context.Background())
	if err != nil || res.Files != 4 || res.Manifests != 2 {
		t.Fatalf("after one more commit (2 nodes x flows and stats): %+v %v", res, err)
	}
	if err := os.RemoveAll(filepath.Join(root, "_ship")); err != nil {
		t.Fatal(err)
	}
	s = newShipper(t, root, "s3://audit/prod-kr1", "")
	if _, err := s.Once(context.Background()); err != nil {
		t.Fatal(err)
	}
	local, got = localFiles(t, root), bucketFiles(t, srv, "audit", "prod-kr1")
	if len(got) != len(local) {
		t.Fatalf("after shipping again: %d objects, %d files", len(got), len(local))
	}
	for k, v := range local {
		if !bytes.Equal(got[k], v) {
			t.Errorf("%s differs in the bucket", k)
		}
	}
}

// TestShipRefusesAlteredFilesAndLocks: a file altered after its commit is
// refused by the server (its bytes do not match the manifest's SHA-256):
// neither it nor its manifest reaches the bucket; with Object Lock set,
// every object carries the mode and a retention date.
func TestShipRefusesAlteredFilesAndLocks(t *testing.T) {
	srv := s3test.Start(t)
	srv.Bucket(t, "worm", true)
	root := t.TempDir()
	writeArchive(t, root, 1)
	files, _ := filepath.Glob(filepath.Join(root, "flows", "*", "node=c%2Fn1", "part-*.parquet"))
	if len(files) != 1 {
		t.Fatalf("flows files %v", files)
	}
	b, _ := os.ReadFile(files[0])
	b[len(b)/2] ^= 0xff
	if err := os.WriteFile(files[0], b, 0o644); err != nil {
		t.Fatal(err)
	}
	s := newShipper(t, root, "s3://worm/x", "GOVERNANCE")
	_, err := s.Once(context.Background())
	if err == nil || !strings.Contains(err.Error(), "BadDigest") {
		t.Fatalf("an altered file shipped: %v", err)
	}
	got := bucketFiles(t, srv, "worm", "x")
	for k := range got {
		if strings.Contains(k, "c%2Fn1") && (strings.HasPrefix(k, "flows/") || strings.HasPrefix(k, "manifests/")) {
			t.Errorf("%s is in the bucket", k)
		}
	}
	cfg, err := config.LoadDefaultConfig(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	c := s3.NewFromConfig(cfg, func(o *s3.Options) { o.UsePathStyle = true })
	n := 0
	for k := range got {
		h, err := c.HeadObject(context.Background(), &s3.HeadObjectInput{Bucket: aws.String("worm"), Key: aws.String("x/" + k)})
		if err != nil {
			t.Fatal(err)
		}
		if h.ObjectLockMode != "GOVERNANCE" || h.ObjectLockRetainUntilDate == nil || !h.ObjectLockRetainUntilDate.After(time.Now().Add(50*time.Minute)) {
			t.Errorf("%s: lock %q until %v", k, h.ObjectLockMode, h.ObjectLockRetainUntilDate)
		}
		n++
	}
	if n == 0 {
		t.Fatal("nothing of the other node shipped")
	}
}
