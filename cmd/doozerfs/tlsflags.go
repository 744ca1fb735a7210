package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"os"
)

// tlsFlags are the TLS flags shared by the client commands and the mount.
type tlsFlags struct {
	ca, cert, key string
	serverName    string
}

func (t *tlsFlags) register(fset *flag.FlagSet) {
	fset.StringVar(&t.ca, "tls-ca", os.Getenv("DOOZERFS_TLS_CA"), "PEM file of the CA that signed the replicas' certificates: connect with TLS and verify them (env DOOZERFS_TLS_CA)")
	fset.StringVar(&t.cert, "tls-cert", "", "PEM certificate to present (mutual TLS)")
	fset.StringVar(&t.key, "tls-key", "", "PEM key of --tls-cert")
	fset.StringVar(&t.serverName, "tls-server-name", "", "name to verify in the replica's certificate (default: the host of --addr)")
}

// clientConfig returns the TLS configuration the flags ask for, or nil for
// plain TCP.
func (t *tlsFlags) clientConfig() (*tls.Config, error) {
	if t.ca == "" && t.cert == "" {
		return nil, nil
	}
	if t.ca == "" {
		return nil, errors.New("--tls-cert needs --tls-ca to verify the replicas")
	}
	pem, err := os.ReadFile(t.ca)
	if err != nil {
		return nil, fmt.Errorf("reading --tls-ca: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("--tls-ca %s: no PEM certificate in it", t.ca)
	}
	cfg := &tls.Config{RootCAs: pool, ServerName: t.serverName, MinVersion: tls.VersionTLS12}
	if t.cert != "" {
		pair, err := tls.LoadX509KeyPair(t.cert, t.key)
		if err != nil {
			return nil, fmt.Errorf("loading --tls-cert/--tls-key: %w", err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return cfg, nil
}
