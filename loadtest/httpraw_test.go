package main

import (
	"bufio"
	"bytes"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestReadResponse(t *testing.T) {
	tests := []struct {
		name       string
		in         string
		wantStatus int
		wantBody   string
		wantErr    string // substring; "closed" for errConnClosed
	}{
		{name: "content-length", in: "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Type: application/json\r\n\r\nhello",
			wantStatus: 200, wantBody: "hello"},
		{name: "header case and spaces", in: "HTTP/1.1 201 Created\r\ncontent-LENGTH:   3  \r\n\r\nabc", wantStatus: 201, wantBody: "abc"},
		{name: "chunked with extension and trailer",
			in:         "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: 1\r\n\r\n",
			wantStatus: 200, wantBody: "hello world"},
		{name: "connection close", in: "HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 2\r\n\r\nno",
			wantStatus: 503, wantBody: "no", wantErr: "closed"},
		{name: "no length reads to EOF", in: "HTTP/1.0 200 OK\r\n\r\nuntil the end", wantStatus: 200, wantBody: "until the end", wantErr: "closed"},
		{name: "204 has no body", in: "HTTP/1.1 204 No Content\r\n\r\n", wantStatus: 204},
		{name: "EOF before a response", in: "", wantErr: "closed"},
		{name: "malformed status line", in: "HTTP/1.1 2x0 OK\r\n\r\n", wantErr: "malformed status line"},
		{name: "not HTTP", in: "+PONG\r\n", wantErr: "malformed status line"},
		{name: "bad content-length", in: "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", wantStatus: 200, wantErr: "Content-Length"},
		{name: "short body", in: "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", wantStatus: 200, wantErr: "read body"},
		{name: "bad chunk size", in: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", wantStatus: 200, wantErr: "chunk size"},
		{name: "header without colon", in: "HTTP/1.1 200 OK\r\nbroken\r\n\r\n", wantStatus: 200, wantErr: "malformed header"},
		{name: "headers too large", in: "HTTP/1.1 200 OK\r\n" + strings.Repeat("X-A: "+strings.Repeat("a", 1000)+"\r\n", 70) + "\r\n",
			wantStatus: 200, wantErr: "headers over"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, keepBody := range []bool{false, true} {
				var keep []byte
				var kp *[]byte
				if keepBody {
					kp = &keep
				}
				status, n, err := readResponse(bufio.NewReaderSize(strings.NewReader(tt.in), 4096), kp)
				switch {
				case tt.wantErr == "closed":
					if !errors.Is(err, errConnClosed) {
						t.Fatalf("err = %v, want errConnClosed", err)
					}
				case tt.wantErr != "":
					if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
						t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
					}
				case err != nil:
					t.Fatalf("err = %v", err)
				}
				if status != tt.wantStatus {
					t.Errorf("status = %d, want %d", status, tt.wantStatus)
				}
				if tt.wantErr == "" || tt.wantErr == "closed" {
					if n != len(tt.wantBody) {
						t.Errorf("n = %d, want %d", n, len(tt.wantBody))
					}
					if keepBody && string(keep) != tt.wantBody {
						t.Errorf("body = %q, want %q", keep, tt.wantBody)
					}
				}
			}
		})
	}
}

// Against net/http's server: keep-alive across many requests, small bodies
// (Content-Length) and large ones (net/http switches to chunked encoding).
func TestHTTPConnAgainstNetHTTP(t *testing.T) {
	large := bytes.Repeat([]byte("0123456789"), 20_000)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body := new(bytes.Buffer)
		_, _ = body.ReadFrom(r.Body)
		if r.URL.Path == "/large" {
			for i := 0; i < len(large); i += 7000 { // several writes: no Content-Length
				_, _ = w.Write(large[i:min(i+7000, len(large))])
			}
			return
		}
		_, _ = w.Write(body.Bytes()) // echo
	}))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	c, err := dialHTTP(host, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	for i := range 50 {
		body := []byte(strings.Repeat("x", i))
		var keep []byte
		status, n, err := c.roundTrip(httpRequest(host, "/echo", "application/json", body), &keep)
		if err != nil || status != 200 || n != i || string(keep) != string(body) {
			t.Fatalf("echo %d: status %d, n %d, body %q, err %v", i, status, n, keep, err)
		}
		status, n, err = c.roundTrip(httpRequest(host, "/large", "application/json", nil), nil)
		if err != nil || status != 200 || n != len(large) {
			t.Fatalf("large %d: status %d, n %d, err %v", i, status, n, err)
		}
	}
}
