package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/featured-dev/featured/internal/certs"
)

const defaultServer = "http://127.0.0.1:8080"

// Timeouts of the client commands. A quick command (get, push, plan,
// apply, delete, registry, status) is bounded as a whole, from dialing to
// the answer's last byte, by quickTimeout. A long one (backfill, apply
// --backfill, export, verify-skew) takes as long as the server works: no
// overall bound unless its --timeout gives one, and Ctrl-C (the command's
// ctx) cancels it. Either way connecting is bounded by connectTimeout, so an
// unreachable server fails fast.
const connectTimeout = 10 * time.Second

// quickTimeout is a variable only so that a test can shorten it.
var quickTimeout = 60 * time.Second

// transport is shared by the client commands (one per process, like
// http.DefaultTransport), with connectTimeout on every dial.
var transport = func() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.DialContext = (&net.Dialer{Timeout: connectTimeout, KeepAlive: 30 * time.Second}).DialContext
	return t
}()

// client is the HTTP client of the client commands.
type client struct {
	server string
	http   *http.Client
	token  string
	err    error // from reading --token-file or --ca-file; every request fails with it
}

// clientConf is what every client command reads from its flags and the
// environment: the server, the bearer token (FEATURED_TOKEN, or
// --token-file; never a flag's value, which ps would show) and the CA of an
// https server.
type clientConf struct {
	url       string
	tokenFile string
	caFile    string
}

func clientFlags(fs *flag.FlagSet) *clientConf {
	c := &clientConf{}
	fs.StringVar(&c.url, "server", defaultServer, "URL of a running featured server (https://... with TLS)")
	fs.StringVar(&c.tokenFile, "token-file", "", "file holding the bearer token (default: $FEATURED_TOKEN)")
	fs.StringVar(&c.caFile, "ca-file", "", "PEM CA certificate to trust besides the system roots (a server with --tls-cert)")
	return c
}

// token returns the bearer token: --token-file's contents, else
// FEATURED_TOKEN, else "" (a server without auth).
func (c *clientConf) token() (string, error) {
	if c.tokenFile != "" {
		b, err := os.ReadFile(c.tokenFile)
		if err != nil {
			return "", fmt.Errorf("--token-file: %w", err)
		}
		return strings.TrimSpace(string(b)), nil
	}
	return os.Getenv("FEATURED_TOKEN"), nil
}

// timeoutFlag is the --timeout of a long command.
func timeoutFlag(fs *flag.FlagSet) *time.Duration {
	return fs.Duration("timeout", 0, "give up after this long (0: wait as long as the server works; Ctrl-C cancels)")
}

// newClient returns a client of server whose requests are bounded as a
// whole by timeout, 0 meaning no bound (long operations).
func newClient(conf *clientConf, timeout time.Duration) *client {
	c := &client{server: strings.TrimRight(conf.url, "/"), http: &http.Client{Transport: transport, Timeout: timeout}}
	c.token, c.err = conf.token()
	if conf.caFile != "" && c.err == nil {
		var cfg *tls.Config
		if cfg, c.err = certs.ClientConfig(conf.caFile); c.err == nil {
			t := transport.Clone()
			t.TLSClientConfig = cfg
			c.http.Transport = t
		}
	}
	return c
}

// newRequest is http.NewRequestWithContext with the bearer token.
func (c *client) newRequest(ctx context.Context, method, url string, body io.Reader) (*http.Request, error) {
	if c.err != nil {
		return nil, c.err
	}
	req, err := http.NewRequestWithContext(ctx, method, url, body)
	if err != nil {
		return nil, err
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	return req, nil
}

// do sends a request and returns the body of a 2xx answer; any other answer
// becomes an error carrying the server's message.
func (c *client) do(ctx context.Context, method, path, contentType string, body []byte) ([]byte, error) {
	req, err := c.newRequest(ctx, method, c.server+path, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		var dial *net.OpError
		var ue *url.Error
		switch {
		case ctx.Err() != nil:
			return nil, fmt.Errorf("%s %s: %w", method, path, ctx.Err())
		case errors.As(err, &dial) && dial.Op == "dial":
			// Not connected: the message below.
		case c.http.Timeout > 0 && errors.As(err, &ue) && ue.Timeout():
			return nil, fmt.Errorf("%s %s: no answer within %s: %w", method, path, c.http.Timeout, err)
		}
		return nil, fmt.Errorf("reach server: %w (is `featured serve` running at %s? set --server)", err, c.server)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("read answer: %w", err)
	}
	if resp.StatusCode/100 != 2 {
		return out, fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, strings.TrimSpace(string(out)))
	}
	return out, nil
}

func printJSON(w io.Writer, b []byte) {
	var buf bytes.Buffer
	if json.Indent(&buf, b, "", "  ") == nil {
		b = buf.Bytes()
	}
	w.Write(b)
	if len(b) > 0 && b[len(b)-1] != '\n' {
		io.WriteString(w, "\n")
	}
}

func applyCmd(ctx context.Context, cmd string, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	server := clientFlags(fs)
	file := fs.String("f", "", "definitions file (YAML or JSON); - for stdin")
	backfill := new(bool)
	if cmd == "apply" {
		fs.BoolVar(backfill, "backfill", false, "then build every view version the apply creates from the offline log (no time limit; Ctrl-C cancels)")
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *file == "" {
		return fmt.Errorf("%s: -f FILE is required", cmd)
	}
	var body []byte
	var err error
	if *file == "-" {
		body, err = io.ReadAll(os.Stdin)
	} else {
		body, err = os.ReadFile(*file)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", cmd, err)
	}
	ct := "application/yaml"
	if strings.HasSuffix(*file, ".json") {
		ct = "application/json"
	}
	path, timeout := "/v1/"+cmd, quickTimeout
	if *backfill {
		path, timeout = path+"?backfill=true", 0
	}
	out, err := newClient(server, timeout).do(ctx, http.MethodPost, path, ct, body)
	var ans struct {
		Error *struct {
			Message string `json:"message"`
		} `json:"error"`
		Text      string `json:"text"`
		Backfills *[]struct {
			View     string `json:"view"`
			Version  int    `json:"version"`
			Entities int    `json:"entities"`
			Error    string `json:"error"`
		} `json:"backfills"` // absent unless ?backfill=true was honored
	}
	if json.Unmarshal(out, &ans) != nil || ans.Text == "" {
		// Refused (nothing applied), or an answer of an unknown shape.
		if err != nil {
			return err
		}
		printJSON(stdout, out)
		return nil
	}
	// Applied; with --backfill, maybe not every backfill succeeded.
	fmt.Fprint(stdout, ans.Text)
	if !strings.HasSuffix(ans.Text, "\n") {
		fmt.Fprintln(stdout)
	}
	if ans.Backfills != nil {
		for _, b := range *ans.Backfills {
			if b.Error != "" {
				fmt.Fprintf(stdout, "backfill of view %s v%d FAILED: %s\n", b.View, b.Version, b.Error)
			} else {
				fmt.Fprintf(stdout, "backfilled view %s v%d: %d entities\n", b.View, b.Version, b.Entities)
			}
		}
	}
	switch {
	case err != nil && ans.Error != nil:
		return fmt.Errorf("%s: %s", cmd, ans.Error.Message)
	case err != nil:
		return err
	case *backfill && ans.Backfills == nil:
		// A server from before ?backfill= ignores it.
		return fmt.Errorf("%s: applied, but the server at %s did not backfill (it does not know ?backfill=true); run `featured backfill VIEW@vN` for each version created", cmd, server.url)
	}
	return nil
}

func deleteCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("delete", flag.ContinueOnError)
	fs.SetOutput(stderr)
	server := clientFlags(fs)
	ver := fs.Int("version", 0, "view version to delete (0: every version)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 2 {
		return fmt.Errorf("delete: want KIND NAME (KIND is view, source, entity or service), got %q", fs.Args())
	}
	kinds := map[string]string{"view": "views", "source": "sources", "entity": "entities", "service": "services"}
	plural, ok := kinds[fs.Arg(0)]
	if !ok {
		return fmt.Errorf("delete: unknown kind %q: want view, source, entity or service", fs.Arg(0))
	}
	path := "/v1/" + plural + "/" + url.PathEscape(fs.Arg(1))
	if *ver != 0 {
		path += "?version=" + strconv.Itoa(*ver)
	}
	out, err := newClient(server, quickTimeout).do(ctx, http.MethodDelete, path, "", nil)
	if err != nil {
		return err
	}
	printJSON(stdout, out)
	return nil
}

func getCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("get", flag.ContinueOnError)
	fs.SetOutput(stderr)
	server := clientFlags(fs)
	features := fs.String("features", "", "comma-separated feature refs (view:feature, view@v2:feature)")
	service := fs.String("service", "", "feature service name (instead of --features)")
	var entities entityFlags
	fs.Var(&entities, "entity", "join key and values: user_id=u1,u2 (integers are sent as numbers); repeat it for every join key of a compound key: --entity driver_id=1,2 --entity customer_id=a,b")
	feast := fs.Bool("feast", false, "use the Feast-compatible /get-online-features endpoint")
	grpcAddr := fs.String("grpc", "", "look up over gRPC at this address (host:port) instead of HTTP")
	grpcTLS := fs.Bool("grpc-tls", false, "with --grpc: connect with TLS (implied by --ca-file or an https --server)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if len(entities.keys) == 0 {
		return fmt.Errorf("get: --entity KEY=V1[,V2...] is required")
	}
	if *features != "" && *service != "" {
		return fmt.Errorf("get: give --features or --service, not both")
	}
	if *grpcAddr != "" {
		var refs []string
		if *features != "" {
			refs = strings.Split(*features, ",")
		}
		out, err := grpcGet(ctx, server, *grpcAddr, *grpcTLS, refs, *service, entities.keys, entities.values)
		if err != nil {
			return err
		}
		printJSON(stdout, out)
		return nil
	}
	ents := map[string]any{}
	for i, k := range entities.keys {
		ents[k] = entities.values[i]
	}
	req := map[string]any{"entities": ents}
	switch {
	case *features != "":
		req["features"] = strings.Split(*features, ",")
	case *service != "":
		req["feature_service"] = *service
	default:
		return fmt.Errorf("get: --features or --service is required")
	}
	body, _ := json.Marshal(req)
	path := "/v1/features"
	if *feast {
		path = "/get-online-features"
	}
	out, err := newClient(server, quickTimeout).do(ctx, http.MethodPost, path, "application/json", body)
	if err != nil {
		return err
	}
	printJSON(stdout, out)
	return nil
}

// entityFlags collects --entity KEY=V1,V2 flags: one per join key (several
// for a compound key), each with one value per entity row.
type entityFlags struct {
	keys   []string
	values [][]any
}

func (e *entityFlags) String() string { return strings.Join(e.keys, ",") }

func (e *entityFlags) Set(s string) error {
	key, vals, ok := strings.Cut(s, "=")
	if !ok || key == "" || vals == "" {
		return fmt.Errorf("want KEY=V1[,V2...], got %q", s)
	}
	if slices.Contains(e.keys, key) {
		return fmt.Errorf("join key %s given twice", key)
	}
	var values []any
	for _, v := range strings.Split(vals, ",") {
		if i, err := strconv.ParseInt(v, 10, 64); err == nil {
			values = append(values, i)
		} else {
			values = append(values, v)
		}
	}
	e.keys, e.values = append(e.keys, key), append(e.values, values)
	return nil
}

func pushCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("push", flag.ContinueOnError)
	fs.SetOutput(stderr)
	server := clientFlags(fs)
	source := fs.String("source", "", "push source name")
	file := fs.String("f", "-", "JSON array of events; - for stdin")
	atomic := fs.Bool("atomic", false, "apply nothing if any event is bad")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *source == "" {
		return fmt.Errorf("push: --source is required")
	}
	var data []byte
	var err error
	if *file == "-" {
		data, err = io.ReadAll(os.Stdin)
	} else {
		data, err = os.ReadFile(*file)
	}
	if err != nil {
		return fmt.Errorf("push: %w", err)
	}
	var events []json.RawMessage
	if err := json.Unmarshal(data, &events); err != nil {
		return fmt.Errorf("push: %s: want a JSON array of event objects: %w", *file, err)
	}
	body, _ := json.Marshal(map[string]any{"source": *source, "events": events, "atomic": *atomic})
	out, err := newClient(server, quickTimeout).do(ctx, http.MethodPost, "/v1/push", "application/json", body)
	printJSON(stdout, out)
	return err
}

func showCmd(ctx context.Context, cmd string, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	server := clientFlags(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	out, err := newClient(server, quickTimeout).do(ctx, http.MethodGet, "/v1/"+cmd, "", nil)
	if err != nil {
		return err
	}
	printJSON(stdout, out)
	return nil
}
