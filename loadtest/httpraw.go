package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"time"
)

// A minimal HTTP/1.1 client for one keep-alive connection, in the spirit of
// wrk: requests are whole pre-built byte slices written with one write, and
// responses are parsed just enough to find the status and skip the body
// (Content-Length or chunked). net/http's client costs about 40 allocations
// and tens of microseconds of CPU per request, which on a 2-core machine is
// CPU taken from the server under test (NOTES.md: vegeta, a net/http-based
// generator, reached 1.3k req/s on one core where wrk drove 13k).
//
// An httpConn is used by one goroutine at a time.

// errConnClosed says the server closed the connection (Connection: close or
// EOF between responses); the caller redials.
var errConnClosed = errors.New("loadtest: connection closed by server")

// maxHeaderBytes bounds a response's header section.
const maxHeaderBytes = 64 << 10

type httpConn struct {
	c       net.Conn
	br      *bufio.Reader
	timeout time.Duration
}

func dialHTTP(addr string, timeout time.Duration) (*httpConn, error) {
	c, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return nil, err
	}
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetNoDelay(true)
	}
	return &httpConn{c: c, br: bufio.NewReaderSize(c, 64<<10), timeout: timeout}, nil
}

func (h *httpConn) close() error { return h.c.Close() }

// roundTrip writes req and reads the response. It returns the status and
// the body's length; with keep non-nil the body is appended to *keep.
func (h *httpConn) roundTrip(req []byte, keep *[]byte) (status, n int, err error) {
	if h.timeout > 0 {
		if err := h.c.SetDeadline(time.Now().Add(h.timeout)); err != nil {
			return 0, 0, err
		}
	}
	if _, err := h.c.Write(req); err != nil {
		return 0, 0, err
	}
	return readResponse(h.br, keep)
}

// httpRequest builds a POST request with a body.
func httpRequest(host, path, contentType string, body []byte) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n", path, host, contentType, len(body))
	b.Write(body)
	return b.Bytes()
}

// readResponse reads one HTTP/1.1 response from br. A response carrying
// Connection: close is read whole and then reported as errConnClosed with
// its status, so the caller counts it and redials.
func readResponse(br *bufio.Reader, keep *[]byte) (status, n int, err error) {
	line, err := br.ReadSlice('\n')
	if err != nil {
		if err == io.EOF && len(line) == 0 {
			return 0, 0, errConnClosed
		}
		return 0, 0, fmt.Errorf("read status line: %w", err)
	}
	// "HTTP/1.1 200 OK\r\n"
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) || line[8] != ' ' {
		return 0, 0, fmt.Errorf("malformed status line %q", trimCRLF(line))
	}
	status, err = atoi3(line[9:12])
	if err != nil {
		return 0, 0, fmt.Errorf("malformed status line %q", trimCRLF(line))
	}
	contentLength := -1
	chunked, closing := false, false
	headerBytes := len(line)
	for {
		line, err = br.ReadSlice('\n')
		if err != nil {
			return status, 0, fmt.Errorf("read headers: %w", err)
		}
		headerBytes += len(line)
		if headerBytes > maxHeaderBytes {
			return status, 0, fmt.Errorf("headers over %d bytes", maxHeaderBytes)
		}
		line = trimCRLF(line)
		if len(line) == 0 {
			break
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 {
			return status, 0, fmt.Errorf("malformed header %q", line)
		}
		name, value := line[:colon], bytes.TrimSpace(line[colon+1:])
		switch {
		case asciiEqualFold(name, "content-length"):
			v, err := strconv.Atoi(string(value))
			if err != nil || v < 0 {
				return status, 0, fmt.Errorf("malformed Content-Length %q", value)
			}
			contentLength = v
		case asciiEqualFold(name, "transfer-encoding"):
			chunked = asciiEqualFold(value, "chunked")
		case asciiEqualFold(name, "connection"):
			closing = asciiEqualFold(value, "close")
		}
	}
	switch {
	case status == 204 || status == 304 || status/100 == 1:
	case chunked:
		n, err = readChunked(br, keep)
	case contentLength >= 0:
		n, err = readN(br, contentLength, keep)
	default:
		// No length: the body runs to the end of the connection.
		var w io.Writer = io.Discard
		var buf bytes.Buffer
		if keep != nil {
			w = &buf
		}
		var c int64
		c, err = io.Copy(w, br)
		n = int(c)
		if keep != nil {
			*keep = append(*keep, buf.Bytes()...)
		}
		closing = true
	}
	if err != nil {
		return status, n, err
	}
	if closing {
		return status, n, errConnClosed
	}
	return status, n, nil
}

func readN(br *bufio.Reader, n int, keep *[]byte) (int, error) {
	if keep == nil {
		d, err := br.Discard(n)
		if err != nil {
			return d, fmt.Errorf("read body: %w", err)
		}
		return d, nil
	}
	start := len(*keep)
	*keep = append(*keep, make([]byte, n)...)
	if _, err := io.ReadFull(br, (*keep)[start:]); err != nil {
		return 0, fmt.Errorf("read body: %w", err)
	}
	return n, nil
}

func readChunked(br *bufio.Reader, keep *[]byte) (int, error) {
	total := 0
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return total, fmt.Errorf("read chunk size: %w", err)
		}
		line = trimCRLF(line)
		if i := bytes.IndexByte(line, ';'); i >= 0 {
			line = line[:i] // chunk extensions
		}
		size, err := strconv.ParseInt(string(bytes.TrimSpace(line)), 16, 64)
		if err != nil || size < 0 || size > 1<<30 {
			return total, fmt.Errorf("malformed chunk size %q", line)
		}
		if size == 0 {
			// Trailers, then the empty line.
			for {
				line, err := br.ReadSlice('\n')
				if err != nil {
					return total, fmt.Errorf("read trailers: %w", err)
				}
				if len(trimCRLF(line)) == 0 {
					return total, nil
				}
			}
		}
		got, err := readN(br, int(size), keep)
		total += got
		if err != nil {
			return total, err
		}
		if _, err := br.Discard(2); err != nil { // CRLF after the chunk
			return total, fmt.Errorf("read chunk end: %w", err)
		}
	}
}

func trimCRLF(b []byte) []byte {
	if len(b) > 0 && b[len(b)-1] == '\n' {
		b = b[:len(b)-1]
	}
	if len(b) > 0 && b[len(b)-1] == '\r' {
		b = b[:len(b)-1]
	}
	return b
}

func atoi3(b []byte) (int, error) {
	v := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, errors.New("not a number")
		}
		v = v*10 + int(c-'0')
	}
	return v, nil
}

// asciiEqualFold reports whether b equals the lower-case ASCII s, ignoring
// case.
func asciiEqualFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range b {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}
