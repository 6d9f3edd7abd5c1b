package main

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"
	"go.uber.org/zap"
	"google.golang.org/grpc"

	"github.com/flowaudit/flowaudit/internal/buildinfo"
	"github.com/flowaudit/flowaudit/pkg/archive"
	"github.com/flowaudit/flowaudit/pkg/serve"
)

func init() { subcommands = append(subcommands, newServeCmd) }

func newServeCmd() *cobra.Command {
	var (
		archiveDirs, clientNS []string
		lc                    serve.ListenConfig
		poll                  time.Duration
		metricsAddr           string
	)
	cmd := &cobra.Command{
		Use:   "serve --archive DIR|s3://BUCKET/PREFIX",
		Short: "Serve the archive through Hubble's Observer API (hubble observe, Hubble UI)",
		Long: `serve answers Hubble's observer.Observer gRPC API from the archive, so that
"hubble observe --server HOST:PORT --since 720h" reads last month's flows:
GetFlows (--since/--until, --first/--last, every filter flag, field masks,
--follow over newly committed files), ServerStatus, GetNodes and
GetNamespaces. Flows come in time order, as they were archived (masked fields
absent). --last N is the newest N flows of the window (a Cilium agent with
--since gives the first N after it). serve only reads: it takes no lock and
writes nothing, beside the daemon and report.

It listens on loopback by default. Any other address is refused without mTLS
(--tls-cert, --tls-key, --tls-client-ca) unless --insecure-listen-any is
given. --client-namespaces ID=NS,NS limits the client whose certificate's
common name is ID to the flows from or to a pod of those namespaces (* for
all); with it, a client it does not name is refused. --metrics-listen serves
the requests, errors and flows sent as Prometheus metrics (docs/metrics.md).`,
		Example: `  flowaudit serve --archive /var/lib/flowaudit
  hubble observe --server localhost:4245 --since 24h --namespace shop --verdict DROPPED
  flowaudit serve --archive s3://audit/flows --listen :4245 --tls-cert srv.crt --tls-key srv.key \
      --tls-client-ca ca.crt --client-namespaces team-a=shop,payments --client-namespaces auditor='*'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			// A query allocates fast (decoded pages, a batch's rows and
			// strings) while what it holds is bounded (a page of each
			// column of the row groups open at once): collecting at 50%
			// growth instead of 100% keeps the peak at 1.5x the live heap.
			if os.Getenv("GOGC") == "" {
				debug.SetGCPercent(50)
			}
			if poll <= 0 {
				return fmt.Errorf("--poll %s: want a duration > 0", poll)
			}
			roots, err := archive.ExpandRoots(archiveDirs)
			if err != nil {
				return err
			}
			var access map[string][]string
			for _, a := range clientNS {
				id, nss, ok := strings.Cut(a, "=")
				if !ok || id == "" || nss == "" {
					return fmt.Errorf("--client-namespaces %q: want ID=NAMESPACE[,NAMESPACE...]", a)
				}
				if access == nil {
					access = map[string][]string{}
				}
				access[id] = append(access[id], strings.Split(nss, ",")...)
			}
			lc.NeedClientCerts = access != nil
			zcfg := zap.NewProductionConfig()
			log, err := zcfg.Build()
			if err != nil {
				return err
			}
			defer func() { _ = log.Sync() }()
			lis, opts, err := serve.Listen(lc)
			if err != nil {
				return err
			}
			var reg *prometheus.Registry
			if metricsAddr != "" {
				reg = prometheus.NewRegistry()
				reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
			}
			cfg := serve.Config{Roots: roots, Poll: poll, Access: access, Version: "flowaudit " + buildinfo.Version, Log: log}
			if reg != nil {
				cfg.Registry = reg
			}
			srv, err := serve.New(cfg)
			if err != nil {
				lis.Close()
				return err
			}
			if reg != nil {
				mlis, err := net.Listen("tcp", metricsAddr)
				if err != nil {
					lis.Close()
					return fmt.Errorf("--metrics-listen: %w", err)
				}
				mux := http.NewServeMux()
				mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
				hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
				go func() { _ = hs.Serve(mlis) }()
				defer hs.Close()
				log.Info("serving metrics", zap.String("listen", mlis.Addr().String()))
			}
			if loop, _ := serve.IsLoopback(lc.Addr); !loop && lc.ClientCAFile == "" {
				log.Warn("serving the archive without client certificates on a non-loopback address", zap.String("listen", lis.Addr().String()))
			}
			gs := grpc.NewServer(append(opts, srv.ServerOptions()...)...)
			srv.Register(gs)
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			go func() {
				<-ctx.Done()
				gs.Stop()
			}()
			log.Info("serving", zap.String("listen", lis.Addr().String()), zap.Strings("archive", roots), zap.Bool("tls", lc.CertFile != ""), zap.Bool("mtls", lc.ClientCAFile != ""))
			fmt.Fprintf(cmd.ErrOrStderr(), "flowaudit serve: listening on %s\n", lis.Addr())
			return gs.Serve(lis)
		},
	}
	f := cmd.Flags()
	f.StringArrayVar(&archiveDirs, "archive", nil, "archive root: a directory, a glob of roots, or s3://BUCKET/PREFIX (repeatable)")
	f.StringVar(&lc.Addr, "listen", "127.0.0.1:4245", "address to listen on (host:port)")
	f.StringVar(&lc.CertFile, "tls-cert", "", "server certificate (PEM)")
	f.StringVar(&lc.KeyFile, "tls-key", "", "server key (PEM)")
	f.StringVar(&lc.ClientCAFile, "tls-client-ca", "", "CA certificates (PEM) whose client certificates are required (mTLS)")
	f.BoolVar(&lc.InsecureListenAny, "insecure-listen-any", false, "serve on a non-loopback address without mTLS: anyone who can connect reads the whole archive")
	f.StringArrayVar(&clientNS, "client-namespaces", nil, "ID=NS[,NS...]: the client whose certificate's common name is ID sees only the flows from or to these namespaces (* all); repeatable")
	f.DurationVar(&poll, "poll", time.Second, "how often --follow requests look for newly committed files")
	f.StringVar(&metricsAddr, "metrics-listen", "", "address (host:port) to serve Prometheus metrics on at /metrics (empty: none)")
	_ = cmd.MarkFlagRequired("archive")
	return cmd
}
