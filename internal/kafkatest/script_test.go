package kafkatest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// script runs scripts/kafka.sh with env added and returns its exit code (0 on
// success), its KAFKA_BROKERS= address if any, and its output.
func script(t *testing.T, env []string, args ...string) (code int, addr, out string) {
	t.Helper()
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	addr, b, err := runScript(ctx, root, env, args...)
	var exit *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit):
		code = exit.ExitCode()
	default:
		t.Fatalf("scripts/kafka.sh %s: %v\n%s", strings.Join(args, " "), err, b)
	}
	return code, addr, string(b)
}

// freePorts returns n distinct TCP ports on 127.0.0.1 that were free a moment ago.
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	ports := make([]int, n)
	for i := range ports {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close() // held until all are chosen, so they differ
		ports[i] = l.Addr().(*net.TCPAddr).Port
	}
	return ports
}

// isolated returns script settings for a broker of its own: a fresh state dir
// and free ports, sharing the jar cache.
func isolated(t *testing.T) []string {
	ports := freePorts(t, 2)
	return []string{
		"KAFKA_DIR=" + t.TempDir(),
		"KAFKA_PORT=" + strconv.Itoa(ports[0]),
		"KAFKA_CONTROLLER_PORT=" + strconv.Itoa(ports[1]),
	}
}

func TestScriptCommandsWithoutBroker(t *testing.T) {
	env := isolated(t)
	port := strings.TrimPrefix(env[1], "KAFKA_PORT=")
	tests := []struct {
		name     string
		env      []string
		args     []string
		wantCode int
		wantOut  string
	}{
		{name: "status when stopped", env: env, args: []string{"status"}, wantCode: 1, wantOut: "kafka: not running"},
		{name: "stop when stopped", env: env, args: []string{"stop"}, wantCode: 0, wantOut: "not running"},
		{name: "env", env: env, args: []string{"env"}, wantCode: 0, wantOut: "export FEATURED_KAFKA_BROKERS=127.0.0.1:" + port + "\n"},
		{name: "usage", env: env, args: []string{"restart"}, wantCode: 2, wantOut: "usage:"},
		{name: "bad port", env: append(env, "KAFKA_PORT=90000"), args: []string{"start"}, wantCode: 1, wantOut: "KAFKA_PORT=90000: not a TCP port number"},
		{name: "same ports", env: append(env, "KAFKA_PORT=20000", "KAFKA_CONTROLLER_PORT=20000"), args: []string{"start"}, wantCode: 1,
			wantOut: "KAFKA_PORT and KAFKA_CONTROLLER_PORT are both 20000"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, out := script(t, tt.env, tt.args...)
			if code != tt.wantCode || !strings.Contains(out, tt.wantOut) {
				t.Fatalf("kafka.sh %v: exit %d, output:\n%s\nwant exit %d and output containing %q", tt.args, code, out, tt.wantCode, tt.wantOut)
			}
		})
	}
}

func TestScriptPortTaken(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	dir := t.TempDir()
	env := []string{
		"KAFKA_DIR=" + dir,
		"KAFKA_PORT=" + strconv.Itoa(l.Addr().(*net.TCPAddr).Port),
		"KAFKA_CONTROLLER_PORT=" + strconv.Itoa(freePorts(t, 1)[0]),
	}
	code, addr, out := script(t, env, "start")
	if code == 0 || addr != "" || !strings.Contains(out, "is in use by another process") {
		t.Fatalf("start on a taken port: exit %d, address %q, output:\n%s\nwant a failure saying the port is in use", code, addr, out)
	}
	if _, err := os.Stat(dir + "/kafka.pid"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("start on a taken port left a pid file (stat: %v)", err)
	}
}

// TestScriptStartIsIdempotent runs start against the broker the tests use,
// when that broker is the script's (FEATURED_KAFKA_BROKERS unset, or naming the
// address the script would use with this environment).
func TestScriptStartIsIdempotent(t *testing.T) {
	brokers := Brokers(t)
	_, _, envOut := script(t, nil, "env")
	if want := "export " + EnvBrokers + "=" + strings.Join(brokers, ","); strings.TrimSpace(envOut) != want {
		t.Skipf("the tests' broker %v is not the one scripts/kafka.sh manages with this environment (%s)", brokers, strings.TrimSpace(envOut))
	}
	code, addr, out := script(t, nil, "start")
	if code != 0 || addr != brokers[0] || !strings.Contains(out, "already running") {
		t.Fatalf("second start: exit %d, address %q, output:\n%s\nwant exit 0, %s, already running", code, addr, out, brokers[0])
	}
	if code, _, out := script(t, nil, "status"); code != 0 || !strings.Contains(out, "kafka: running") {
		t.Fatalf("status: exit %d, output:\n%s", code, out)
	}
}

// TestScriptLifecycle starts a second broker in a temporary state dir, stops it,
// and starts it again: data survives, every command is idempotent, and stop
// really ends the JVM.
func TestScriptLifecycle(t *testing.T) {
	t.Parallel()
	env := isolated(t)
	t.Cleanup(func() {
		if code, _, out := script(t, env, "stop"); code != 0 {
			t.Errorf("cleanup stop: exit %d\n%s", code, out)
		}
	})

	start := func() string {
		t.Helper()
		began := time.Now()
		code, addr, out := script(t, env, "start")
		if code != 0 || addr == "" {
			t.Fatalf("start: exit %d, address %q, output:\n%s", code, addr, out)
		}
		t.Logf("start took %v", time.Since(began).Round(time.Millisecond))
		return addr
	}
	addr := start()
	brokers := []string{addr}
	if code, again, out := script(t, env, "start"); code != 0 || again != addr || !strings.Contains(out, "already running") {
		t.Fatalf("second start: exit %d, address %q, output:\n%s", code, again, out)
	}
	if code, _, out := script(t, env, "status"); code != 0 {
		t.Fatalf("status of a running broker: exit %d\n%s", code, out)
	}

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	topic := uniqueName("lifecycle")
	if err := createTopic(ctx, brokers, topic, 2); err != nil {
		t.Fatal(err)
	}
	msgs := []*kgo.Record{{Key: []byte("a"), Value: []byte("1")}, {Key: []byte("b"), Value: []byte("2")}, {Key: []byte("c"), Value: []byte("3")}}
	if err := produce(brokers, topic, msgs, nil); err != nil {
		t.Fatal(err)
	}
	count := func() int {
		n := 0
		for p := range 2 {
			got, err := readAll(ctx, brokers, topic, p)
			if err != nil {
				t.Fatal(err)
			}
			n += len(got)
		}
		return n
	}
	if n := count(); n != len(msgs) {
		t.Fatalf("read %d messages before restart, want %d", n, len(msgs))
	}

	pid, err := os.ReadFile(strings.TrimPrefix(env[0], "KAFKA_DIR=") + "/kafka.pid")
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if code, _, out := script(t, env, "stop"); code != 0 {
			t.Fatalf("stop: exit %d\n%s", code, out)
		}
	}
	if _, err := os.Stat(fmt.Sprintf("/proc/%s", strings.TrimSpace(string(pid)))); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("broker pid %s still exists after stop (stat: %v)", strings.TrimSpace(string(pid)), err)
	}
	if code, _, out := script(t, env, "status"); code != 1 {
		t.Fatalf("status of a stopped broker: exit %d, want 1\n%s", code, out)
	}
	if conn, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		conn.Close()
		t.Fatalf("%s still accepts connections after stop", addr)
	}

	if again := start(); again != addr {
		t.Fatalf("restart address %q, want %q", again, addr)
	}
	if n := count(); n != len(msgs) {
		t.Fatalf("read %d messages after restart, want %d: data did not survive", n, len(msgs))
	}
}
