package main

import (
	"bufio"
	"errors"
	"strings"
	"testing"
)

func TestAppendCommand(t *testing.T) {
	got := string(appendCommand(nil, "HMGET", "e:1", "feature_0"))
	want := "*3\r\n$5\r\nHMGET\r\n$3\r\ne:1\r\n$9\r\nfeature_0\r\n"
	if got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestSkipReply(t *testing.T) {
	tests := []struct {
		name     string
		in       string
		replies  int
		wantNils int
		wantBulk []string // visited bulk strings, "<nil>" for nil
		wantErr  string
	}{
		{name: "HMGET array with a nil", in: "*3\r\n$3\r\n123\r\n$-1\r\n$1\r\n7\r\n", replies: 1, wantNils: 1,
			wantBulk: []string{"123", "<nil>", "7"}},
		{name: "pipelined simple, integer, bulk", in: "+OK\r\n:42\r\n$2\r\nhi\r\n", replies: 3, wantBulk: []string{"hi"}},
		{name: "nested arrays", in: "*2\r\n*1\r\n$1\r\na\r\n*0\r\n", replies: 1, wantBulk: []string{"a"}},
		{name: "nil array", in: "*-1\r\n", replies: 1, wantNils: 1},
		{name: "error reply", in: "-WRONGTYPE Operation against a key\r\n", replies: 1, wantErr: "WRONGTYPE"},
		{name: "unknown type", in: "?x\r\n", replies: 1, wantErr: "unknown redis reply type"},
		{name: "bad bulk length", in: "$x\r\n", replies: 1, wantErr: "malformed bulk length"},
		{name: "truncated bulk", in: "$10\r\nabc", replies: 1, wantErr: "read bulk"},
		{name: "too deep", in: strings.Repeat("*1\r\n", 12) + ":1\r\n", replies: 1, wantErr: "nests too deep"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, visit := range []bool{false, true} {
				r := respReader{br: bufio.NewReaderSize(strings.NewReader(tt.in), 4096)}
				var got []string
				if visit {
					r.visit = func(b []byte) {
						if b == nil {
							got = append(got, "<nil>")
							return
						}
						got = append(got, string(b))
					}
				}
				var err error
				for range tt.replies {
					if err = r.skipReply(0); err != nil {
						break
					}
				}
				if tt.wantErr != "" {
					if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
						t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
					}
					if tt.wantErr == "WRONGTYPE" && !errors.Is(err, errRedis) {
						t.Errorf("err = %v, want errRedis", err)
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				if r.n != len(tt.in) {
					t.Errorf("consumed %d bytes, want %d", r.n, len(tt.in))
				}
				if r.nils != tt.wantNils {
					t.Errorf("nils = %d, want %d", r.nils, tt.wantNils)
				}
				if visit && strings.Join(got, ",") != strings.Join(tt.wantBulk, ",") {
					t.Errorf("visited %q, want %q", got, tt.wantBulk)
				}
			}
		})
	}
}
