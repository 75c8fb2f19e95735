package kafkatest

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// EnvBrokers names the environment variable that points tests at a running
// broker: comma-separated host:port pairs, e.g. "127.0.0.1:19092".
const EnvBrokers = "FEATURED_KAFKA_BROKERS"

// startTimeout caps `scripts/kafka.sh start`. The first run on a machine fetches
// the broker's jars (~45 MB) through Maven, so it is generous; later runs take
// seconds, or nothing when the broker is already up.
const startTimeout = 10 * time.Minute

// dialTimeout caps the reachability check of the broker.
const dialTimeout = 10 * time.Second

// ErrNoRepoRoot is returned when the repository root (the directory holding
// go.mod and scripts/kafka.sh) cannot be found from this package or the working
// directory, so the broker cannot be started.
var ErrNoRepoRoot = errors.New("kafkatest: repository root with scripts/kafka.sh not found")

var broker struct {
	once    sync.Once
	brokers []string
	err     error
}

// Brokers returns the addresses of a running Kafka broker, starting one with
// scripts/kafka.sh if FEATURED_KAFKA_BROKERS is unset. The lookup (and the start)
// happens once per test binary; later calls return the same addresses. It fails
// the test, never skips it, when no broker can be reached or started.
func Brokers(t testing.TB) []string {
	t.Helper()
	broker.once.Do(func() {
		broker.brokers, broker.err = findBrokers()
	})
	if broker.err != nil {
		t.Fatalf("kafkatest: no Kafka broker: %v", broker.err)
	}
	return append([]string(nil), broker.brokers...)
}

func findBrokers() ([]string, error) {
	var brokers []string
	if env, ok := os.LookupEnv(EnvBrokers); ok && strings.TrimSpace(env) != "" {
		var err error
		if brokers, err = ParseBrokers(env); err != nil {
			return nil, fmt.Errorf("%s=%q: %w", EnvBrokers, env, err)
		}
	} else {
		root, err := RepoRoot()
		if err != nil {
			return nil, err
		}
		ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
		defer cancel()
		addr, out, err := runScript(ctx, root, nil, "start")
		if err != nil {
			return nil, fmt.Errorf("%s unset and scripts/kafka.sh start failed: %w\n%s", EnvBrokers, err, out)
		}
		brokers = []string{addr}
	}
	for _, b := range brokers {
		conn, err := net.DialTimeout("tcp", b, dialTimeout)
		if err != nil {
			return nil, fmt.Errorf("broker %s not reachable: %w", b, err)
		}
		conn.Close()
	}
	return brokers, nil
}

// ParseBrokers splits a comma-separated list of host:port pairs, the format of
// FEATURED_KAFKA_BROKERS, rejecting empty entries and entries without a port.
func ParseBrokers(list string) ([]string, error) {
	var brokers []string
	for i, b := range strings.Split(list, ",") {
		b = strings.TrimSpace(b)
		if b == "" {
			return nil, fmt.Errorf("entry %d is empty", i)
		}
		if _, port, err := net.SplitHostPort(b); err != nil || port == "" {
			return nil, fmt.Errorf("entry %d (%q) is not host:port", i, b)
		}
		brokers = append(brokers, b)
	}
	return brokers, nil
}

// RepoRoot returns the repository root: the nearest directory at or above this
// package's source directory (or, if the source path is not absolute, e.g. with
// -trimpath, the working directory) that holds go.mod and scripts/kafka.sh.
func RepoRoot() (string, error) {
	var starts []string
	if _, file, _, ok := runtime.Caller(0); ok && filepath.IsAbs(file) {
		starts = append(starts, filepath.Dir(file))
	}
	if wd, err := os.Getwd(); err == nil {
		starts = append(starts, wd)
	}
	for _, dir := range starts {
		for {
			if isFile(filepath.Join(dir, "go.mod")) && isFile(filepath.Join(dir, "scripts", "kafka.sh")) {
				return dir, nil
			}
			parent := filepath.Dir(dir)
			if parent == dir {
				break
			}
			dir = parent
		}
	}
	return "", fmt.Errorf("%w (searched up from %s)", ErrNoRepoRoot, strings.Join(starts, ", "))
}

func isFile(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular()
}

// runScript runs scripts/kafka.sh with args in root, with env appended to this
// process's environment. It returns the address from the script's
// KAFKA_BROKERS= line (empty if there was none) and the combined output.
func runScript(ctx context.Context, root string, env []string, args ...string) (addr string, out []byte, err error) {
	cmd := exec.CommandContext(ctx, "bash", append([]string{filepath.Join(root, "scripts", "kafka.sh")}, args...)...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), env...)
	// The broker the script starts holds none of our pipes, but be sure a stray
	// child cannot keep Wait from returning.
	cmd.WaitDelay = 5 * time.Second
	out, err = cmd.CombinedOutput()
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "KAFKA_BROKERS="); ok {
			addr = strings.TrimSpace(v)
		}
	}
	if err == nil && args[0] == "start" && addr == "" {
		err = errors.New("scripts/kafka.sh start printed no KAFKA_BROKERS= line")
	}
	return addr, out, err
}
