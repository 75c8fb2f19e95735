package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"strconv"
)

// RESP2 (the Redis protocol) written by hand: commands are pre-built byte
// slices (a request is a pipeline of commands written with one write), and
// replies are walked without building values: the generator counts bytes
// and nil replies, so a lookup costs it no allocation. A client library
// (github.com/redis/go-redis/v9 is the well-kept one) would allocate a
// []any and a string per field of every HMGET reply: CPU taken from Redis
// on the same two cores, which would flatter featured's ratio to it.

// appendCommand appends one command as a RESP array of bulk strings.
func appendCommand(b []byte, args ...string) []byte {
	b = append(b, '*')
	b = strconv.AppendInt(b, int64(len(args)), 10)
	b = append(b, "\r\n"...)
	for _, a := range args {
		b = append(b, '$')
		b = strconv.AppendInt(b, int64(len(a)), 10)
		b = append(b, "\r\n"...)
		b = append(b, a...)
		b = append(b, "\r\n"...)
	}
	return b
}

// errRedis is a Redis error reply ("-ERR ...").
var errRedis = errors.New("loadtest: redis error reply")

// respReader walks replies. visit, when set, is called with every bulk
// string (nil for a nil bulk string) in reply order, for verification.
type respReader struct {
	br    *bufio.Reader
	n     int // bytes consumed
	nils  int // nil bulk strings and nil arrays seen
	visit func(b []byte)
	buf   []byte
}

// skipReply reads one whole reply, nested arrays included.
func (r *respReader) skipReply(depth int) error {
	if depth > 8 {
		return errors.New("loadtest: redis reply nests too deep")
	}
	line, err := r.br.ReadSlice('\n')
	if err != nil {
		return fmt.Errorf("read reply: %w", err)
	}
	r.n += len(line)
	line = trimCRLF(line)
	if len(line) == 0 {
		return errors.New("loadtest: empty redis reply line")
	}
	switch line[0] {
	case '+', ':':
		return nil
	case '-':
		return fmt.Errorf("%w: %s", errRedis, line[1:])
	case '$':
		size, err := strconv.Atoi(string(line[1:]))
		if err != nil || size < -1 || size > 512<<20 {
			return fmt.Errorf("loadtest: malformed bulk length %q", line)
		}
		if size == -1 {
			r.nils++
			if r.visit != nil {
				r.visit(nil)
			}
			return nil
		}
		if r.visit != nil {
			r.buf = append(r.buf[:0], make([]byte, size+2)...)
			if _, err := ioReadFull(r.br, r.buf); err != nil {
				return fmt.Errorf("read bulk: %w", err)
			}
			if !bytes.HasSuffix(r.buf, []byte("\r\n")) {
				return errors.New("loadtest: bulk string not followed by CRLF")
			}
			r.visit(r.buf[:size])
		} else if _, err := r.br.Discard(size + 2); err != nil {
			return fmt.Errorf("read bulk: %w", err)
		}
		r.n += size + 2
		return nil
	case '*':
		count, err := strconv.Atoi(string(line[1:]))
		if err != nil || count < -1 {
			return fmt.Errorf("loadtest: malformed array length %q", line)
		}
		if count == -1 {
			r.nils++
			return nil
		}
		for range count {
			if err := r.skipReply(depth + 1); err != nil {
				return err
			}
		}
		return nil
	}
	return fmt.Errorf("loadtest: unknown redis reply type %q", line[0])
}

func ioReadFull(br *bufio.Reader, b []byte) (int, error) {
	n := 0
	for n < len(b) {
		m, err := br.Read(b[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}
