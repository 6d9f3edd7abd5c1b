// Package s3test runs a real S3 server for tests: versitygw, built with `go
// install` from the Go module proxy (so Go's build cache makes later builds
// fast), serving a temporary directory through its posix backend on
// loopback, with bucket versioning (for Object Lock) and metadata in a
// sidecar directory (no extended attributes needed).
package s3test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// Version is the versitygw release the tests run.
const Version = "v1.8.0"

// Server is a running versitygw.
type Server struct {
	Endpoint       string // http://127.0.0.1:PORT
	Access, Secret string
	Data           string // the posix backend's directory: BUCKET/KEY
	cmd            *exec.Cmd
	args           []string
	logs           *bytes.Buffer
}

var (
	buildOnce sync.Once
	binary    string
	buildErr  error
)

// build installs versitygw into the user's cache directory, once.
func build() (string, error) {
	buildOnce.Do(func() {
		dir, err := os.UserCacheDir()
		if err != nil {
			dir = os.TempDir()
		}
		dir = filepath.Join(dir, "flowaudit-test", "versitygw-"+Version)
		binary = filepath.Join(dir, "versitygw")
		if _, err := os.Stat(binary); err == nil {
			return
		}
		cmd := exec.Command("go", "install", "github.com/versity/versitygw/cmd/versitygw@"+Version)
		cmd.Env = append(os.Environ(), "GOBIN="+dir, "CGO_ENABLED=0", "GOFLAGS=")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go install versitygw@%s: %v\n%s", Version, err, out)
		}
	})
	return binary, buildErr
}

// Start builds (once) and starts a server for the test, stopped when it
// ends, and points the AWS SDK's environment at it. Without the module
// proxy the test is skipped, unless CI is set.
func Start(t testing.TB) *Server {
	t.Helper()
	bin, err := build()
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	dir := t.TempDir()
	s := &Server{Access: "flowaudit-test", Secret: "flowaudit-test-secret", Data: filepath.Join(dir, "data"), logs: &bytes.Buffer{}}
	for _, d := range []string{s.Data, filepath.Join(dir, "versions"), filepath.Join(dir, "meta")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	s.Endpoint = "http://" + addr
	s.args = []string{"--access", s.Access, "--secret", s.Secret, "--port", addr, "--quiet",
		"posix", "--sidecar", filepath.Join(dir, "meta"), "--versioning-dir", filepath.Join(dir, "versions"), s.Data}
	s.cmd = exec.Command(bin, s.args...)
	s.Resume(t)
	t.Cleanup(s.Stop)
	t.Setenv("AWS_ENDPOINT_URL", s.Endpoint)
	t.Setenv("AWS_ACCESS_KEY_ID", s.Access)
	t.Setenv("AWS_SECRET_ACCESS_KEY", s.Secret)
	t.Setenv("AWS_REGION", "us-east-1")
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(dir, "no-config"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(dir, "no-credentials"))
	return s
}

// Stop stops the server (it can be started again with Resume).
func (s *Server) Stop() {
	if s.cmd != nil && s.cmd.Process != nil && s.cmd.ProcessState == nil {
		_ = s.cmd.Process.Kill()
		_ = s.cmd.Wait()
	}
}

// Resume starts the stopped server again on the same address and data.
func (s *Server) Resume(t testing.TB) {
	t.Helper()
	s.cmd = exec.Command(s.cmd.Path, s.args...)
	s.cmd.Stdout, s.cmd.Stderr = s.logs, s.logs
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(s.Endpoint)
		if err == nil {
			resp.Body.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("versitygw did not start: %v\n%s", err, s.logs)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Bucket creates a bucket, with Object Lock enabled when lock is set.
func (s *Server) Bucket(t testing.TB, name string, lock bool) {
	t.Helper()
	ctx := context.Background()
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c := s3.NewFromConfig(cfg, func(o *s3.Options) { o.UsePathStyle = true })
	in := &s3.CreateBucketInput{Bucket: aws.String(name)}
	if lock {
		in.ObjectLockEnabledForBucket = aws.Bool(true)
	}
	if _, err := c.CreateBucket(ctx, in); err != nil {
		t.Fatalf("create bucket %s: %v", name, err)
	}
}
