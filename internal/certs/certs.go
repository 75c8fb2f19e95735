// Package certs owns featured's TLS configuration: a server certificate
// reloaded from its files when they change (no restart to rotate it),
// optional client certificates verified against a CA, and the client side's
// roots (the system's plus a CA file). A Reloader is safe for concurrent
// use; it has no goroutine: the handshake checks the files, at most once
// per Options.CheckEvery.
package certs

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"time"
)

// Options configure a Reloader. The zero value is usable.
type Options struct {
	// CheckEvery is how often, at most, a handshake stats the files. The
	// default is 1s.
	CheckEvery time.Duration
	// Logger receives reloads and failed reloads. The default discards.
	Logger *slog.Logger
}

// Reloader serves a certificate and key from files, reloading them when
// either file's modification time or size changes. A pair that fails to
// load keeps the previous one in force (logged).
type Reloader struct {
	certFile, keyFile string
	opts              Options
	mu                struct {
		sync.Mutex
		cert      *tls.Certificate
		stamp     string // mtimes and sizes of the pair loaded
		nextCheck time.Time
	}
}

// NewReloader loads the pair; an error names the file.
func NewReloader(certFile, keyFile string, opts Options) (*Reloader, error) {
	if opts.CheckEvery == 0 {
		opts.CheckEvery = time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	r := &Reloader{certFile: certFile, keyFile: keyFile, opts: opts}
	stamp, err := r.stamp()
	if err != nil {
		return nil, err
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("certs: load %s and %s: %w", certFile, keyFile, err)
	}
	r.mu.cert, r.mu.stamp = &cert, stamp
	return r, nil
}

func (r *Reloader) stamp() (string, error) {
	var s string
	for _, f := range []string{r.certFile, r.keyFile} {
		fi, err := os.Stat(f)
		if err != nil {
			return "", fmt.Errorf("certs: %w", err)
		}
		s += fmt.Sprintf("%d/%d;", fi.ModTime().UnixNano(), fi.Size())
	}
	return s, nil
}

// GetCertificate is tls.Config.GetCertificate.
func (r *Reloader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := time.Now()
	if now.Before(r.mu.nextCheck) {
		return r.mu.cert, nil
	}
	r.mu.nextCheck = now.Add(r.opts.CheckEvery)
	stamp, err := r.stamp()
	if err != nil || stamp == r.mu.stamp {
		return r.mu.cert, nil
	}
	cert, err := tls.LoadX509KeyPair(r.certFile, r.keyFile)
	if err != nil {
		// Mid-rotation (the key written, not yet the cert): try again at
		// the next check.
		r.opts.Logger.Warn("certs: reload failed; the previous certificate stays in force", "cert", r.certFile, "err", err)
		return r.mu.cert, nil
	}
	r.mu.cert, r.mu.stamp = &cert, stamp
	r.opts.Logger.Info("certs: certificate reloaded", "cert", r.certFile)
	return r.mu.cert, nil
}

// ServerConfig returns the TLS configuration of featured serve: TLS 1.2 at
// least, the certificate from r, and, with clientCAFile, client
// certificates verified against it when a client sends one (a client
// without one may still send a bearer token).
func ServerConfig(r *Reloader, clientCAFile string) (*tls.Config, error) {
	c := &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: r.GetCertificate}
	if clientCAFile != "" {
		pool, err := loadPool(nil, clientCAFile)
		if err != nil {
			return nil, err
		}
		c.ClientCAs = pool
		c.ClientAuth = tls.VerifyClientCertIfGiven
	}
	return c, nil
}

// ClientConfig returns the client commands' TLS configuration: the
// system's roots plus caFile's certificates ("" for none).
func ClientConfig(caFile string) (*tls.Config, error) {
	c := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile == "" {
		return c, nil
	}
	sys, err := x509.SystemCertPool()
	if err != nil {
		sys = x509.NewCertPool()
	}
	if c.RootCAs, err = loadPool(sys, caFile); err != nil {
		return nil, err
	}
	return c, nil
}

func loadPool(pool *x509.CertPool, file string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("certs: %w", err)
	}
	if pool == nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("certs: %s holds no PEM certificate", file)
	}
	return pool, nil
}
