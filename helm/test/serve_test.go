package helmtest

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// TestServeRenderedArgs runs the real featured binary with the command line
// each rendering gives its container (paths moved under a temp dir, addresses
// to loopback), so a flag the chart passes and the server does not know, or a
// definitions file that does not apply, fails here rather than in a pod. Each
// server must become ready on /readyz (over TLS when the chart passes a
// certificate), enforce its token file when the chart passes one, and exit 0
// on SIGTERM.
func TestServeRenderedArgs(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "featured")
	build := exec.Command("go", "build", "-C", filepath.Join("..", ".."), "-o", bin, "./cmd/featured")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build featured: %v\n%s", err, out)
	}
	for name, data := range renderedVariants(t) {
		t.Run(name, func(t *testing.T) {
			m, err := decodeRendered(data)
			if err != nil {
				t.Fatal(err)
			}
			r := checkCommon(t, m)
			args, client := localArgs(t, m, r)
			serveUntilReady(t, bin, args, client)
		})
	}
}

// localArgs rewrites the container's arguments for a process on this
// machine: the data volume and the definitions mount become temp dirs, the
// listeners loopback with ports the kernel picks, the brokers the project's
// test broker. The files the pod would get from Secrets (token file,
// certificate, key, client CA) are made here at their rewritten paths, and
// the returned client knows the token and trusts the certificate.
func localArgs(t *testing.T, m *manifests, r *rendering) ([]string, *serveClient) {
	t.Helper()
	dir := t.TempDir()
	mounts := map[string]string{} // mount path -> local dir
	for _, vm := range r.container.VolumeMounts {
		local := filepath.Join(dir, vm.Name)
		if err := os.MkdirAll(local, 0o755); err != nil {
			t.Fatal(err)
		}
		mounts[vm.MountPath] = local
		if v := podVolume(r.pod, vm.Name); v != nil && v.ConfigMap != nil {
			cm := m.configMaps[v.ConfigMap.Name]
			if cm == nil {
				continue // an existing ConfigMap; not rendered, so not run here
			}
			for k, text := range cm.Data {
				if err := os.WriteFile(filepath.Join(local, k), []byte(text), 0o644); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	out := []string{r.args[0]}
	for _, a := range r.args[1:] {
		name, value, _ := strings.Cut(strings.TrimPrefix(a, "--"), "=")
		// The kubelet expands $(POD_NAME) (the downward API's pod name, which
		// cluster mode takes as its member id and host name) in arguments.
		value = strings.ReplaceAll(value, "$(POD_NAME)", "featured-chart-test-0")
		switch name {
		case "http-addr", "grpc-addr":
			value = "127.0.0.1:0"
		case "backup-dest", "checkpoint-dest":
			// The bucket is the cluster's; a directory is a destination
			// too (featured backup), so the scheduled backups run here.
			value = filepath.Join(dir, name)
		case "kafka-brokers":
			value = os.Getenv("FEATURED_KAFKA_BROKERS")
			if value == "" {
				t.Fatal("the chart passes --kafka-brokers: set FEATURED_KAFKA_BROKERS to the test broker (bash scripts/kafka.sh start; source .ci/kafka-env.sh)")
			}
		default:
			// The deepest mount holding the path, rewritten once.
			best := ""
			for mp := range mounts {
				if (value == mp || strings.HasPrefix(value, mp+"/")) && len(mp) > len(best) {
					best = mp
				}
			}
			if best != "" {
				value = mounts[best] + strings.TrimPrefix(value, best)
			}
		}
		out = append(out, "--"+name+"="+value)
	}
	return out, secretFiles(t, out)
}

// serveClient talks to a server started by serveUntilReady.
type serveClient struct {
	http   *http.Client
	scheme string // http, or https with --tls-cert
	// token is a read-scoped token of the --auth-file written for the
	// server; empty without --auth-file.
	token        string
	metricsToken bool // --metrics-token-required
}

// secretFiles writes the files the security flags of args name: a token
// file with one read-scoped token, and a self-signed certificate for
// 127.0.0.1 (also the client CA, any CA will do).
func secretFiles(t *testing.T, args []string) *serveClient {
	t.Helper()
	c := &serveClient{http: &http.Client{}, scheme: "http"}
	var certPEM, keyPEM []byte
	for _, a := range args[1:] {
		name, file, _ := strings.Cut(strings.TrimPrefix(a, "--"), "=")
		var data []byte
		switch name {
		case "auth-file":
			c.token = rand.Text()
			sum := sha256.Sum256([]byte(c.token))
			data = fmt.Appendf(nil, "tokens:\n  - name: chart-test\n    sha256: %x\n    scopes: [read]\n", sum)
		case "metrics-token-required":
			c.metricsToken = file == "true"
		case "tls-cert", "tls-key", "tls-client-ca":
			if certPEM == nil {
				certPEM, keyPEM = selfSigned(t)
				pool := x509.NewCertPool()
				pool.AppendCertsFromPEM(certPEM)
				c.scheme = "https"
				c.http.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
			}
			data = certPEM
			if name == "tls-key" {
				data = keyPEM
			}
		}
		if data == nil {
			continue
		}
		if err := os.WriteFile(file, data, 0o600); err != nil {
			t.Fatalf("--%s: %v", name, err)
		}
	}
	return c
}

// selfSigned returns a PEM certificate for 127.0.0.1, valid for the test's
// run, and its key. internal/certs/certstest would do, but the nested module
// may not import the root module's internal packages.
func selfSigned(t *testing.T) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "featured-chart-test"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(time.Hour),
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:              []string{"localhost"},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IsCA:                  true,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
}

// status GETs path, with the client's token when withToken, and returns
// the status code.
func (c *serveClient) status(ctx context.Context, t *testing.T, addr, path string, withToken bool) int {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.scheme+"://"+addr+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if withToken {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		t.Errorf("GET %s: %v", path, err)
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// checkAuth asserts that the token file the chart points at is in force:
// the API refuses a request without the token and serves it with it, and
// /metrics needs one exactly when --metrics-token-required says so.
func (c *serveClient) checkAuth(ctx context.Context, t *testing.T, addr string) {
	t.Helper()
	if c.token == "" {
		return
	}
	metricsOpen := http.StatusOK
	if c.metricsToken {
		metricsOpen = http.StatusUnauthorized
	}
	for _, tc := range []struct {
		path      string
		withToken bool
		want      int
	}{
		{"/v1/registry", false, http.StatusUnauthorized},
		{"/v1/registry", true, http.StatusOK},
		{"/metrics", false, metricsOpen},
		{"/metrics", true, http.StatusOK},
	} {
		if got := c.status(ctx, t, addr, tc.path, tc.withToken); got != tc.want {
			t.Errorf("GET %s (token %v): %d, want %d", tc.path, tc.withToken, got, tc.want)
		}
	}
}

var servingLine = regexp.MustCompile(`featured serving.*?http"?[=:]"?(127\.0\.0\.1:\d+)`)

func serveUntilReady(t *testing.T, bin string, args []string, client *serveClient) {
	t.Helper()
	// A cap on the whole run, so a server that never starts fails the test
	// instead of hanging it; nothing is asserted about how long it took.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var log strings.Builder
	addr := ""
	sc := bufio.NewScanner(stderr)
	for addr == "" && sc.Scan() {
		log.WriteString(sc.Text() + "\n")
		if m := servingLine.FindStringSubmatch(sc.Text()); m != nil {
			addr = m[1]
		}
	}
	if addr == "" {
		_ = cmd.Wait()
		t.Fatalf("featured %q exited before serving:\n%s", args, log.String())
	}
	go func() { // keep draining, or a chatty server blocks on a full pipe
		for sc.Scan() {
		}
	}()
	ready := false
	for !ready && ctx.Err() == nil {
		// The probes' path is open: no token.
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, client.scheme+"://"+addr+"/readyz", nil)
		if err != nil {
			t.Fatal(err)
		}
		if resp, err := client.http.Do(req); err == nil {
			ready = resp.StatusCode == http.StatusOK
			resp.Body.Close()
		}
		if !ready {
			time.Sleep(50 * time.Millisecond) // poll interval, capped by ctx
		}
	}
	if !ready {
		t.Errorf("featured %q never answered 200 on %s://%s/readyz", args, client.scheme, addr)
	} else {
		client.checkAuth(ctx, t, addr)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Errorf("featured %q after SIGTERM: %v (want exit 0)", args, err)
	}
}

func podVolume(pod *corev1.PodSpec, name string) *corev1.Volume {
	for i := range pod.Volumes {
		if pod.Volumes[i].Name == name {
			return &pod.Volumes[i]
		}
	}
	return nil
}
