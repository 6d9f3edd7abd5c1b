package serve

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"

	observerpb "github.com/cilium/cilium/api/v1/observer"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// ListenConfig says where and how serve listens.
type ListenConfig struct {
	Addr string
	// CertFile and KeyFile are the server's certificate and key (TLS);
	// ClientCAFile, the CAs whose client certificates are required (mTLS).
	CertFile, KeyFile, ClientCAFile string
	// InsecureListenAny lets a non-loopback address be served without mTLS.
	InsecureListenAny bool
	// NeedClientCerts is set when access is restricted by client identity.
	NeedClientCerts bool
}

// IsLoopback reports whether the listen address addr only accepts
// connections from this host: a loopback IP or "localhost". An empty host
// (":4245") listens on every interface.
func IsLoopback(addr string) (bool, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false, err
	}
	if host == "localhost" {
		return true, nil
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback(), nil
}

// Listen checks the configuration and opens the listener, with the gRPC
// server options of its TLS. The archive holds a cluster's traffic: an
// address other than loopback is refused without mTLS (server certificate
// and client CAs) unless InsecureListenAny says otherwise.
func Listen(c ListenConfig) (net.Listener, []grpc.ServerOption, error) {
	loop, err := IsLoopback(c.Addr)
	if err != nil {
		return nil, nil, fmt.Errorf("serve: --listen %q: %w", c.Addr, err)
	}
	if (c.CertFile == "") != (c.KeyFile == "") {
		return nil, nil, errors.New("serve: --tls-cert and --tls-key go together")
	}
	if c.ClientCAFile != "" && c.CertFile == "" {
		return nil, nil, errors.New("serve: --tls-client-ca needs --tls-cert and --tls-key")
	}
	mtls := c.CertFile != "" && c.ClientCAFile != ""
	if c.NeedClientCerts && !mtls {
		return nil, nil, errors.New("serve: --client-namespaces needs mTLS (--tls-cert, --tls-key, --tls-client-ca): a client is known by its certificate")
	}
	if !loop && !mtls && !c.InsecureListenAny {
		return nil, nil, fmt.Errorf("serve: refusing to serve the archive on %s, which is not a loopback address, without mTLS (--tls-cert, --tls-key, --tls-client-ca); --insecure-listen-any serves it to anyone who can connect", c.Addr)
	}
	var opts []grpc.ServerOption
	if c.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
		if err != nil {
			return nil, nil, fmt.Errorf("serve: TLS key pair: %w", err)
		}
		tc := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS13}
		if c.ClientCAFile != "" {
			pem, err := os.ReadFile(c.ClientCAFile)
			if err != nil {
				return nil, nil, fmt.Errorf("serve: client CA: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, nil, fmt.Errorf("serve: client CA %s: no PEM certificate", c.ClientCAFile)
			}
			tc.ClientCAs, tc.ClientAuth = pool, tls.RequireAndVerifyClientCert
		}
		opts = append(opts, grpc.Creds(credentials.NewTLS(tc)))
	}
	lis, err := net.Listen("tcp", c.Addr)
	if err != nil {
		return nil, nil, fmt.Errorf("serve: %w", err)
	}
	return lis, opts, nil
}

// Register registers the Observer service and gRPC's health service (which
// `hubble status` asks first) on gs.
func (s *Server) Register(gs *grpc.Server) {
	observerpb.RegisterObserverServer(gs, s)
	hs := health.NewServer()
	hs.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	// The name Cilium's agent and Relay register (pkg/hubble/api/v1), which
	// `hubble status` checks.
	hs.SetServingStatus("hubble.server.Observer", healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(gs, hs)
}
