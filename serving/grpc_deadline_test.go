package serving_test

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"io"
	"net"
	"net/http"
	"strconv"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"google.golang.org/grpc/codes"

	featuredv1 "github.com/featured-dev/featured/api/featured/v1"
	"github.com/featured-dev/featured/serving"
)

// TestGRPCSlowMessageCutOff: a gRPC client that sends its request message a
// few bytes at a time, slower than the call deadline (body + write timeout)
// allows, gets DEADLINE_EXCEEDED instead of holding a stream for ever. The
// client speaks raw HTTP/2, as grpc-go's own client cannot be made to stall
// mid-message.
func TestGRPCSlowMessageCutOff(t *testing.T) {
	h := newHarness(t, serving.Options{BodyTimeout: 200 * time.Millisecond, WriteTimeout: 200 * time.Millisecond})
	tr := &http2.Transport{
		AllowHTTP: true,
		DialTLSContext: func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		},
	}
	defer tr.CloseIdleConnections()

	// The client's own bound, far above the server's 400ms: a server that
	// never cuts the call off fails here rather than hanging the suite.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	pr, pw := io.Pipe()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+h.conn.Target()+"/featured.v1.ServingService/GetOnlineFeatures", pr)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/grpc")
	req.Header.Set("TE", "trailers")
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		// A frame header announcing 1000 bytes, then a byte every 100ms:
		// the message would take 100 s to arrive.
		var hdr [5]byte
		binary.BigEndian.PutUint32(hdr[1:], 1000)
		if _, err := pw.Write(hdr[:]); err != nil {
			return
		}
		for {
			select {
			case <-stop:
				pw.Close()
				return
			case <-time.After(100 * time.Millisecond):
			}
			if _, err := pw.Write([]byte{0x0a}); err != nil {
				return
			}
		}
	}()
	start := time.Now()
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatalf("round trip: %v", err)
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil { // trailers arrive after the body
		t.Fatalf("reading the answer after %v: %v (the server never cut the call off)", time.Since(start), err)
	}
	code := resp.Trailer.Get("Grpc-Status")
	if code == "" {
		code = resp.Header.Get("Grpc-Status") // a trailers-only answer
	}
	if code != strconv.Itoa(int(codes.DeadlineExceeded)) {
		t.Fatalf("slow message after %v: grpc-status %q (%s), want %d (DeadlineExceeded)",
			time.Since(start), code, resp.Trailer.Get("Grpc-Message"), codes.DeadlineExceeded)
	}

	// A normal call on the same server still works.
	seed(h)
	greq := &featuredv1.GetOnlineFeaturesRequest{
		Kind:     &featuredv1.GetOnlineFeaturesRequest_Features{Features: &featuredv1.FeatureList{Val: userRefs[:1]}},
		Entities: map[string]*featuredv1.RepeatedValue{"user_id": protoKeys("u1")},
	}
	if _, err := h.serving.GetOnlineFeatures(context.Background(), greq); err != nil {
		t.Fatalf("a normal call after the cut-off: %v", err)
	}
}
