package serve

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	flowpb "github.com/cilium/cilium/api/v1/flow"
	observerpb "github.com/cilium/cilium/api/v1/observer"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/flowaudit/flowaudit/pkg/archive"
)

type certs struct {
	ca     *x509.Certificate
	caKey  *ecdsa.PrivateKey
	caPool *x509.CertPool
	dir    string
}

func newCA(t *testing.T) *certs {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	c := &certs{ca: ca, caKey: key, caPool: pool, dir: t.TempDir()}
	writePEM(t, filepath.Join(c.dir, "ca.crt"), "CERTIFICATE", der)
	return c
}

func writePEM(t *testing.T, path, typ string, der []byte) {
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// issue makes a certificate for cn, written as cn.crt and cn.key.
func (c *certs) issue(t *testing.T, cn string, server bool) tls.Certificate {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature}
	if server {
		tmpl.ExtKeyUsage, tmpl.IPAddresses = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, []net.IP{net.ParseIP("127.0.0.1")}
	} else {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, c.ca, &key.PublicKey, c.caKey)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	writePEM(t, filepath.Join(c.dir, cn+".crt"), "CERTIFICATE", der)
	writePEM(t, filepath.Join(c.dir, cn+".key"), "EC PRIVATE KEY", kder)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// TestListenRefusesNonLoopbackWithoutMTLS: only loopback is served without
// client certificates, unless the insecure flag is given.
func TestListenRefusesNonLoopbackWithoutMTLS(t *testing.T) {
	c := newCA(t)
	c.issue(t, "server", true)
	crt, key, ca := filepath.Join(c.dir, "server.crt"), filepath.Join(c.dir, "server.key"), filepath.Join(c.dir, "ca.crt")
	for _, tc := range []struct {
		cfg ListenConfig
		ok  bool
	}{
		{ListenConfig{Addr: "127.0.0.1:0"}, true},
		{ListenConfig{Addr: "localhost:0"}, true},
		{ListenConfig{Addr: ":0"}, false},
		{ListenConfig{Addr: "0.0.0.0:0", CertFile: crt, KeyFile: key}, false},
		{ListenConfig{Addr: "0.0.0.0:0", CertFile: crt, KeyFile: key, ClientCAFile: ca}, true},
		{ListenConfig{Addr: ":0", InsecureListenAny: true}, true},
		{ListenConfig{Addr: "127.0.0.1:0", NeedClientCerts: true}, false},
		{ListenConfig{Addr: "127.0.0.1:0", ClientCAFile: ca}, false},
	} {
		lis, _, err := Listen(tc.cfg)
		if (err == nil) != tc.ok {
			t.Fatalf("%+v: err %v", tc.cfg, err)
		}
		if lis != nil {
			lis.Close()
		}
	}
}

// TestClientNamespaces: two clients, each limited to its namespace by its
// certificate, see only the flows from or to it; a client the access map
// does not name is refused.
func TestClientNamespaces(t *testing.T) {
	root := t.TempDir()
	w, err := archive.Open(archive.Config{Root: root}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	flows := testFlows(t, 5, start, 3000)
	writeFlows(t, w, flows)
	w.Close()
	nsA, nsB := "", ""
	for _, f := range flows {
		if n := f.GetSource().GetNamespace(); n != "" {
			if nsA == "" {
				nsA = n
			} else if n != nsA && nsB == "" {
				nsB = n
			}
		}
	}
	c := newCA(t)
	c.issue(t, "server", true)
	cert := map[string]tls.Certificate{"team-a": c.issue(t, "team-a", false), "team-b": c.issue(t, "team-b", false), "stranger": c.issue(t, "stranger", false)}
	s, err := New(Config{Roots: []string{root}, Access: map[string][]string{"team-a": {nsA}, "team-b": {nsB}}})
	if err != nil {
		t.Fatal(err)
	}
	lis, opts, err := Listen(ListenConfig{Addr: "127.0.0.1:0", CertFile: filepath.Join(c.dir, "server.crt"), KeyFile: filepath.Join(c.dir, "server.key"), ClientCAFile: filepath.Join(c.dir, "ca.crt"), NeedClientCerts: true})
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer(opts...)
	s.Register(gs)
	go func() { _ = gs.Serve(lis) }()
	defer gs.Stop()
	client := func(id string) observerpb.ObserverClient {
		tc := &tls.Config{Certificates: []tls.Certificate{cert[id]}, RootCAs: c.caPool, MinVersion: tls.VersionTLS13}
		conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(credentials.NewTLS(tc)))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		return observerpb.NewObserverClient(conn)
	}
	for id, ns := range map[string]string{"team-a": nsA, "team-b": nsB} {
		req := &observerpb.GetFlowsRequest{Whitelist: []*flowpb.FlowFilter{{Verdict: []flowpb.Verdict{flowpb.Verdict_FORWARDED}}}}
		got := getFlows(t, client(id), req)
		want := expect(t, flows, &observerpb.GetFlowsRequest{Whitelist: []*flowpb.FlowFilter{
			{Verdict: []flowpb.Verdict{flowpb.Verdict_FORWARDED}, SourcePod: []string{ns + "/"}},
			{Verdict: []flowpb.Verdict{flowpb.Verdict_FORWARDED}, DestinationPod: []string{ns + "/"}},
		}})
		if len(want) == 0 || len(want) == len(expect(t, flows, req)) {
			t.Fatalf("%s: the test's namespace %q selects %d flows", id, ns, len(want))
		}
		sameFlows(t, id, got, want)
		nss, err := client(id).GetNamespaces(context.Background(), &observerpb.GetNamespacesRequest{})
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range nss.Namespaces {
			if n.Namespace != ns {
				t.Fatalf("%s sees namespace %s", id, n.Namespace)
			}
		}
		// ServerStatus and GetNodes count the client's flows only.
		mine := expect(t, flows, &observerpb.GetFlowsRequest{Whitelist: []*flowpb.FlowFilter{{SourcePod: []string{ns + "/"}}, {DestinationPod: []string{ns + "/"}}}})
		perNode := map[string]uint64{}
		for _, f := range mine {
			perNode[f.GetNodeName()]++
		}
		for range 2 { // counted, then remembered
			st, err := client(id).ServerStatus(context.Background(), &observerpb.ServerStatusRequest{})
			if err != nil {
				t.Fatal(err)
			}
			if st.NumFlows != uint64(len(mine)) || st.SeenFlows != st.NumFlows || st.FlowsRate != 0 {
				t.Errorf("%s: ServerStatus num %d seen %d rate %v, want the %d flows of %s and no rate", id, st.NumFlows, st.SeenFlows, st.FlowsRate, len(mine), ns)
			}
			if span := mine[len(mine)-1].GetTime().AsTime().Sub(mine[0].GetTime().AsTime()); st.UptimeNs != uint64(span) {
				t.Errorf("%s: uptime %d, want the span of its flows %d", id, st.UptimeNs, span)
			}
			nodes, err := client(id).GetNodes(context.Background(), &observerpb.GetNodesRequest{})
			if err != nil {
				t.Fatal(err)
			}
			for _, n := range nodes.Nodes {
				if n.NumFlows != perNode[n.Name] {
					t.Errorf("%s: node %s: %d flows, want %d", id, n.Name, n.NumFlows, perNode[n.Name])
				}
			}
		}
	}
	stream, err := client("stranger").GetFlows(context.Background(), &observerpb.GetFlowsRequest{})
	if err == nil {
		_, err = stream.Recv()
	}
	if status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), "stranger") {
		t.Fatalf("a client without access: %v", err)
	}
}
