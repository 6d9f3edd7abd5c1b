// Package objstore is flowaudit's S3-compatible object storage: the client
// configured the way users already configure AWS's tools, uploads whose
// bytes the server checks against a SHA-256 before it stores them, optional
// S3 Object Lock, and an io/fs view of a bucket prefix whose files are read
// by byte ranges, so that the archive's readers (report, verify, serve) read
// an archive in a bucket as they read one on disk.
//
// The client is the AWS SDK for Go v2: its default credential chain
// (environment, shared config and credentials files, web identity as IRSA
// sets it, ECS and EC2 roles) and its standard AWS_ENDPOINT_URL /
// AWS_ENDPOINT_URL_S3 and AWS_CA_BUNDLE are what operators already use, and
// its PutObject sends x-amz-checksum-sha256, which S3 and the S3-compatible
// servers (MinIO, Ceph RGW, versitygw) verify before storing the object.
package objstore

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
)

// Location is an s3://bucket/prefix address.
type Location struct {
	Bucket string
	Prefix string // without leading or trailing slash; "" for the bucket's root
}

// String returns s3://bucket/prefix.
func (l Location) String() string {
	if l.Prefix == "" {
		return "s3://" + l.Bucket
	}
	return "s3://" + l.Bucket + "/" + l.Prefix
}

// Key returns the object key of a path relative to the prefix.
func (l Location) Key(rel string) string {
	if l.Prefix == "" {
		return rel
	}
	return l.Prefix + "/" + rel
}

// IsURL reports whether s is an s3:// address.
func IsURL(s string) bool { return strings.HasPrefix(s, "s3://") }

// ParseURL parses s3://bucket[/prefix].
func ParseURL(s string) (Location, error) {
	u, err := url.Parse(s)
	if err != nil || u.Scheme != "s3" || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return Location{}, fmt.Errorf("objstore: %q: want s3://BUCKET[/PREFIX]", s)
	}
	prefix := strings.Trim(u.Path, "/")
	if strings.Contains(prefix, "//") {
		return Location{}, fmt.Errorf("objstore: %q: empty path segment", s)
	}
	return Location{Bucket: u.Host, Prefix: prefix}, nil
}

// Options configure a Client beyond the SDK's defaults.
type Options struct {
	// Endpoint overrides AWS_ENDPOINT_URL(_S3) (an S3-compatible server).
	Endpoint string
	// Region overrides AWS_REGION; with neither, us-east-1 (what
	// S3-compatible servers answer to).
	Region string
	// PathStyle forces path-style addressing; it is on anyway when the
	// endpoint's host is an IP address or localhost.
	PathStyle bool
}

// Client is an S3 client.
type Client struct {
	s3       *s3.Client
	endpoint string
}

// New configures a client from the SDK's default chain and opts.
func New(ctx context.Context, opts Options) (*Client, error) {
	var lo []func(*config.LoadOptions) error
	if opts.Region != "" {
		lo = append(lo, config.WithRegion(opts.Region))
	}
	cfg, err := config.LoadDefaultConfig(ctx, lo...)
	if err != nil {
		return nil, fmt.Errorf("objstore: AWS configuration: %w", err)
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	endpoint := opts.Endpoint
	if endpoint == "" {
		endpoint = firstEnv("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")
	}
	if endpoint == "" && cfg.BaseEndpoint != nil {
		endpoint = *cfg.BaseEndpoint
	}
	pathStyle := opts.PathStyle || hostIsLocal(endpoint)
	c := s3.NewFromConfig(cfg, func(o *s3.Options) {
		if opts.Endpoint != "" {
			o.BaseEndpoint = aws.String(opts.Endpoint)
		}
		o.UsePathStyle = pathStyle
		// The checksum of an upload is the one flowaudit gives (the file's
		// SHA-256, which its manifest records), not one the SDK computes
		// again; a download is checked against the manifest by the reader.
		o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
		o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
	})
	return &Client{s3: c, endpoint: endpoint}, nil
}

func firstEnv(names ...string) string {
	for _, n := range names {
		if v := os.Getenv(n); v != "" {
			return v
		}
	}
	return ""
}

// hostIsLocal reports whether an endpoint URL's host is an IP address or
// localhost: virtual-hosted addressing (bucket.host) cannot work there.
func hostIsLocal(endpoint string) bool {
	if endpoint == "" {
		return false
	}
	u, err := url.Parse(endpoint)
	if err != nil {
		return false
	}
	h := u.Hostname()
	return h == "localhost" || net.ParseIP(h) != nil
}

// Lock is S3 Object Lock for an upload: the object version cannot be
// deleted or overwritten until RetainUntil (Mode "COMPLIANCE": by no one;
// "GOVERNANCE": but by a principal allowed to bypass it).
type Lock struct {
	Mode        string
	RetainUntil time.Time
}

// Put uploads size bytes of body to key. sha256Hex is their SHA-256: the
// server refuses the upload when the bytes it received do not match it, so
// a nil error means the bucket holds exactly these bytes. Uploading the
// same bytes to the same key again is harmless.
func (c *Client) Put(ctx context.Context, loc Location, rel string, body io.ReadSeeker, size int64, sha256Hex string, lock *Lock) error {
	sum, err := hex.DecodeString(sha256Hex)
	if err != nil || len(sum) != 32 {
		return fmt.Errorf("objstore: put %s: bad SHA-256 %q", rel, sha256Hex)
	}
	in := &s3.PutObjectInput{
		Bucket: aws.String(loc.Bucket), Key: aws.String(loc.Key(rel)), Body: body, ContentLength: aws.Int64(size),
		ChecksumSHA256: aws.String(base64.StdEncoding.EncodeToString(sum)),
	}
	if lock != nil {
		in.ObjectLockMode = types.ObjectLockMode(lock.Mode)
		in.ObjectLockRetainUntilDate = aws.Time(lock.RetainUntil.UTC())
	}
	if _, err := c.s3.PutObject(ctx, in); err != nil {
		return fmt.Errorf("objstore: put %s/%s: %w", loc, rel, err)
	}
	return nil
}

// ObjectInfo is what a HEAD or a listing says of an object.
type ObjectInfo struct {
	Key     string // relative to the location's prefix
	Size    int64
	ModTime time.Time
}

// ErrNotFound is returned for a key that does not exist.
var ErrNotFound = errors.New("objstore: not found")

// Head returns an object's size.
func (c *Client) Head(ctx context.Context, loc Location, rel string) (ObjectInfo, error) {
	out, err := c.s3.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(loc.Bucket), Key: aws.String(loc.Key(rel))})
	if err != nil {
		if isNotFound(err) {
			return ObjectInfo{}, fmt.Errorf("objstore: %s/%s: %w", loc, rel, ErrNotFound)
		}
		return ObjectInfo{}, fmt.Errorf("objstore: head %s/%s: %w", loc, rel, err)
	}
	info := ObjectInfo{Key: rel, Size: aws.ToInt64(out.ContentLength)}
	if out.LastModified != nil {
		info.ModTime = *out.LastModified
	}
	return info, nil
}

// GetRange reads len(p) bytes of an object from off.
func (c *Client) GetRange(ctx context.Context, loc Location, rel string, p []byte, off int64) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	out, err := c.s3.GetObject(ctx, &s3.GetObjectInput{
		Bucket: aws.String(loc.Bucket), Key: aws.String(loc.Key(rel)),
		Range: aws.String(fmt.Sprintf("bytes=%d-%d", off, off+int64(len(p))-1)),
	})
	if err != nil {
		if isNotFound(err) {
			return 0, fmt.Errorf("objstore: %s/%s: %w", loc, rel, ErrNotFound)
		}
		return 0, fmt.Errorf("objstore: get %s/%s at %d: %w", loc, rel, off, err)
	}
	defer out.Body.Close()
	n, err := io.ReadFull(out.Body, p)
	if errors.Is(err, io.ErrUnexpectedEOF) {
		err = io.EOF
	}
	return n, err
}

// Get opens an object for reading whole.
func (c *Client) Get(ctx context.Context, loc Location, rel string) (io.ReadCloser, error) {
	out, err := c.s3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(loc.Bucket), Key: aws.String(loc.Key(rel))})
	if err != nil {
		if isNotFound(err) {
			return nil, fmt.Errorf("objstore: %s/%s: %w", loc, rel, ErrNotFound)
		}
		return nil, fmt.Errorf("objstore: get %s/%s: %w", loc, rel, err)
	}
	return out.Body, nil
}

// List calls fn with the objects and common prefixes ("directories") under
// rel (a directory relative to the location's prefix, "" for its root),
// one level deep: names relative to rel.
func (c *Client) List(ctx context.Context, loc Location, rel string, fn func(name string, dir bool, size int64, mod time.Time) error) error {
	prefix := loc.Key(rel)
	if prefix != "" {
		prefix += "/"
	}
	p := s3.NewListObjectsV2Paginator(c.s3, &s3.ListObjectsV2Input{Bucket: aws.String(loc.Bucket), Prefix: aws.String(prefix), Delimiter: aws.String("/")})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			if isNotFound(err) {
				return fmt.Errorf("objstore: list %s/%s: %w", loc, rel, ErrNotFound)
			}
			return fmt.Errorf("objstore: list %s/%s: %w", loc, rel, err)
		}
		for _, cp := range page.CommonPrefixes {
			name := strings.TrimSuffix(strings.TrimPrefix(aws.ToString(cp.Prefix), prefix), "/")
			if name != "" {
				if err := fn(name, true, 0, time.Time{}); err != nil {
					return err
				}
			}
		}
		for _, o := range page.Contents {
			name := strings.TrimPrefix(aws.ToString(o.Key), prefix)
			if name == "" || strings.Contains(name, "/") {
				continue
			}
			if err := fn(name, false, aws.ToInt64(o.Size), aws.ToTime(o.LastModified)); err != nil {
				return err
			}
		}
	}
	return nil
}

func isNotFound(err error) bool {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		switch ae.ErrorCode() {
		case "NoSuchKey", "NotFound", "NoSuchBucket", "404":
			return true
		}
	}
	var nf *types.NotFound
	var nk *types.NoSuchKey
	return errors.As(err, &nf) || errors.As(err, &nk)
}
