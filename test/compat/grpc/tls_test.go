package grpc

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"database/sql"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	observerpb "github.com/cilium/cilium/api/v1/observer"
	"github.com/cilium/cilium/pkg/hubble/observer"
	observerTypes "github.com/cilium/cilium/pkg/hubble/observer/types"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/flowaudit/flowaudit/pkg/gen"
)

// pki is a CA and certificates it signed, as PEM files in dir.
type pki struct {
	ca     *x509.Certificate
	caKey  *ecdsa.PrivateKey
	caFile string
}

func newPKI(t *testing.T, dir string) *pki {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "hubble-ca.cilium.io"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(der)
	p := &pki{ca: ca, caKey: key, caFile: filepath.Join(dir, "ca.crt")}
	writePEM(t, p.caFile, "CERTIFICATE", der)
	return p
}

// issue writes name.crt and name.key for a server (dns) or client certificate.
func (p *pki) issue(t *testing.T, dir, name, dns string, server bool) (certFile, keyFile string) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	usage := x509.ExtKeyUsageClientAuth
	if server {
		usage = x509.ExtKeyUsageServerAuth
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: dns},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), DNSNames: []string{dns},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.ca, &key.PublicKey, p.caKey)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(key)
	certFile, keyFile = filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	writePEM(t, certFile, "CERTIFICATE", der)
	writePEM(t, keyFile, "EC PRIVATE KEY", kder)
	return certFile, keyFile
}

func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestRunOverMutualTLS: an agent's TCP listener as Cilium configures it
// (TLS 1.3, client certificates required, the server named
// <node>.<cluster>.hubble-grpc.cilium.io) read with the client certificate
// the test's CA issued; every flow archived once. Without a client
// certificate the daemon is refused, says so, and archives nothing.
func TestRunOverMutualTLS(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the daemon against Cilium's observer over TLS")
	}
	dir := t.TempDir()
	bin := buildFlowaudit(t, dir)
	p := newPKI(t, dir)
	const serverName = "node-01.prod-kr1.hubble-grpc.cilium.io"
	scert, skey := p.issue(t, dir, "server", serverName, true)
	ccert, ckey := p.issue(t, dir, "client", "flowaudit.hubble-grpc.cilium.io", false)
	pair, err := tls.LoadX509KeyPair(scert, skey)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(p.ca)
	obs, err := observer.NewLocalServer(flowParser{}, observer.NewNamespaceManager(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	go obs.Start()
	defer close(obs.GetEventsChannel())
	srv := grpc.NewServer(grpc.Creds(credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{pair}, ClientCAs: pool,
		ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS13})))
	observerpb.RegisterObserverServer(srv, obs)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Stop()

	g, err := gen.New(gen.Config{Seed: 3, Nodes: 1, Cluster: "prod-kr1", Rate: 1000, LostEventEvery: -1, AgentEventEvery: -1})
	if err != nil {
		t.Fatal(err)
	}
	var uuids []string
	for len(uuids) < 2000 {
		f := g.Next().GetFlow()
		if f == nil {
			continue
		}
		obs.GetEventsChannel() <- &observerTypes.MonitorEvent{Timestamp: time.Now(), NodeName: f.GetNodeName(), Payload: f}
		uuids = append(uuids, f.GetUuid())
	}
	// The ring hands out its newest slot once another is written.
	last := g.Next().GetFlow()
	obs.GetEventsChannel() <- &observerTypes.MonitorEvent{Timestamp: time.Now(), NodeName: last.GetNodeName(), Payload: last}

	addr := "grpc://" + ln.Addr().String()
	run := func(arch string, args ...string) string {
		logs := &bytes.Buffer{}
		c := exec.Command(bin, append([]string{"run", "--source", addr, "--archive", arch, "--node", "prod-kr1/node-01", "--listen", "",
			"--tls-ca", p.caFile, "--tls-server-name", serverName, "--log-level", "warn"}, args...)...)
		c.Stdout, c.Stderr = logs, logs
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(4 * time.Second)
		_ = c.Process.Signal(syscall.SIGTERM)
		if err := c.Wait(); err != nil {
			t.Fatalf("%v\n%s", err, logs)
		}
		return logs.String()
	}
	arch := filepath.Join(dir, "archive")
	run(arch, "--tls-cert", ccert, "--tls-key", ckey)
	db, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n, distinct int
	if err := db.QueryRow(fmt.Sprintf("SELECT count(*), count(DISTINCT uuid) FROM read_parquet('%s/flows/**/*.parquet')", arch)).Scan(&n, &distinct); err != nil {
		t.Fatal(err)
	}
	if n != len(uuids) || distinct != n {
		t.Fatalf("%d flows archived (%d distinct), %d served", n, distinct, len(uuids))
	}

	noCert := filepath.Join(dir, "nocert")
	logs := run(noCert)
	matches, _ := filepath.Glob(filepath.Join(noCert, "flows", "*", "*", "part-*.parquet"))
	if len(matches) != 0 || !bytes.Contains([]byte(logs), []byte("gRPC stream failed")) {
		t.Fatalf("without a client certificate: %d flows files, logs:\n%s", len(matches), logs)
	}
}
