package ingest

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/featured-dev/featured/aggregate"
	"github.com/featured-dev/featured/featurestore"
	"github.com/featured-dev/featured/internal/kafkatest"
	"github.com/featured-dev/featured/internal/keyenc"
)

// privateBroker runs a broker of this test's own (other ports, own state
// dir) with scripts/kafka.sh, so stopping it does not disturb tests that
// share the suite's broker.
type privateBroker struct {
	script string
	env    []string
	addr   string
}

// freePorts returns n distinct free ports: all listeners are held until
// every port is chosen, so two calls cannot return the same one.
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var ports []int
	for i := 0; i < n; i++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return ports
}

func startPrivateBroker(t *testing.T) *privateBroker {
	t.Helper()
	root, err := kafkatest.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	ports := freePorts(t, 2)
	b := &privateBroker{
		script: filepath.Join(root, "scripts", "kafka.sh"),
		env: append(os.Environ(), "KAFKA_PORT="+strconv.Itoa(ports[0]),
			"KAFKA_CONTROLLER_PORT="+strconv.Itoa(ports[1]), "KAFKA_DIR="+filepath.Join(t.TempDir(), "kafka")),
		addr: "127.0.0.1:" + strconv.Itoa(ports[0]),
	}
	b.run(t, "start")
	t.Cleanup(func() { b.run(t, "stop") })
	return b
}

func (b *privateBroker) run(t *testing.T, verb string) {
	t.Helper()
	cmd := exec.Command("bash", b.script, verb)
	cmd.Env = b.env
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("kafka.sh %s: %v\n%s", verb, err, out)
	}
}

// TestKafkaBrokerRestart stops the broker mid-stream: ingest pauses and
// retries while lookups go on, and once the broker is back ingestion
// resumes where it stopped, with nothing lost or doubled.
func TestKafkaBrokerRestart(t *testing.T) {
	b := startPrivateBroker(t)
	brokers := []string{b.addr}
	topic := kafkatest.CreateTopic(t, brokers, "tx", 2)
	e := newEnv(t, defsFor("tx_kafka", "v", topic))
	e.now = time.Now()
	streams := e.entityStreams(6, 31)
	first := messages(streams, 0, 60)
	run := e.runKafka(t, brokers)
	kafkatest.Produce(t, brokers, topic, first)
	waitFor(t, "first part applied", 60*time.Second, func() bool {
		applied, _ := counted(run.k, "tx_kafka")
		return applied == uint64(len(first))
	})
	if err := e.store.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}

	b.run(t, "stop")
	// Serving goes on from the store while the broker is away.
	v, _ := e.reg.Snapshot().View("v", 0)
	key, _ := keyenc.AppendEntity(nil, aggregate.Value{Kind: aggregate.KindString, S: "user-0"})
	out := make([]aggregate.Result, 1)
	if err := e.store.Read(featurestore.ViewKey{ID: v.ID, Version: uint32(v.Version)}, v.Layout, e.part(key), key, []int{1}, e.now.UnixMilli(), out); err != nil || out[0].Status != aggregate.StatusPresent {
		t.Fatalf("lookup with the broker down: %+v %v", out[0], err)
	}
	waitFor(t, "the consumer to report the broker's absence", 60*time.Second, func() bool {
		for _, c := range run.k.Status() {
			for _, p := range c.Partitions {
				if p.LastError != "" {
					return true
				}
			}
		}
		return false
	})

	b.run(t, "start")
	second := messages(streams, 60, 150)
	kafkatest.Produce(t, brokers, topic, second)
	waitFor(t, "everything applied after the broker returned", 120*time.Second, func() bool {
		applied, _ := counted(run.k, "tx_kafka")
		return applied == uint64(len(first)+len(second))
	})
	if err := e.store.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	e.checkView(t, "v", streams)
}
