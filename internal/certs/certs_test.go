package certs_test

import (
	"crypto/tls"
	"path/filepath"
	"testing"
	"time"

	"github.com/featured-dev/featured/internal/certs"
	"github.com/featured-dev/featured/internal/certs/certstest"
)

// serverSerial is the serial of the certificate a server presents.
func serverSerial(t *testing.T, addr string, cfg *tls.Config) string {
	t.Helper()
	c, err := tls.Dial("tcp", addr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0].SerialNumber.String()
}

func TestReloadAndClientCert(t *testing.T) {
	ca := certstest.NewCA(t)
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	first := ca.Issue(t, "server", certFile, keyFile)
	r, err := certs.NewReloader(certFile, keyFile, certs.Options{CheckEvery: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	scfg, err := certs.ServerConfig(r, ca.File)
	if err != nil {
		t.Fatal(err)
	}
	if scfg.MinVersion != tls.VersionTLS12 {
		t.Errorf("MinVersion %x; want TLS 1.2", scfg.MinVersion)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", scfg)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	subjects := make(chan string, 16)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			tc := c.(*tls.Conn)
			if tc.Handshake() == nil {
				st := tc.ConnectionState()
				if len(st.VerifiedChains) > 0 {
					subjects <- st.VerifiedChains[0][0].Subject.String()
				} else {
					subjects <- ""
				}
			}
			c.Close()
		}
	}()
	ccfg, err := certs.ClientConfig(ca.File)
	if err != nil {
		t.Fatal(err)
	}
	ccfg.ServerName = "127.0.0.1"
	if got := serverSerial(t, ln.Addr().String(), ccfg); got != first.SerialNumber.String() {
		t.Fatalf("serial %s; want the first certificate's %s", got, first.SerialNumber)
	}
	if s := <-subjects; s != "" {
		t.Errorf("no client certificate: subject %q; want none", s)
	}

	// Rotate the files: the server presents the new one without a restart.
	second := ca.Issue(t, "server", certFile, keyFile)
	deadline := time.Now().Add(10 * time.Second)
	for serverSerial(t, ln.Addr().String(), ccfg) != second.SerialNumber.String() {
		<-subjects
		if time.Now().After(deadline) {
			t.Fatal("the rotated certificate is not served 10s after the files changed")
		}
		time.Sleep(5 * time.Millisecond)
	}
	<-subjects

	// A client certificate from the CA: its subject is verified.
	cdir := t.TempDir()
	ca.Issue(t, "svc", filepath.Join(cdir, "c.crt"), filepath.Join(cdir, "c.key"))
	cc, err := tls.LoadX509KeyPair(filepath.Join(cdir, "c.crt"), filepath.Join(cdir, "c.key"))
	if err != nil {
		t.Fatal(err)
	}
	ccfg.Certificates = []tls.Certificate{cc}
	serverSerial(t, ln.Addr().String(), ccfg)
	if s := <-subjects; s != "CN=svc" {
		t.Errorf("client certificate subject %q; want CN=svc", s)
	}

	// A client without the CA refuses the server.
	if c, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}); err == nil {
		c.Close()
		t.Error("a client without --ca-file trusted the test CA's certificate")
	}
}
