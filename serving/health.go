package serving

import (
	"io"
	"net/http"
	"strings"

	"github.com/featured-dev/featured/internal/diskguard"
)

// Check is one named readiness check of GET /readyz, in the style of
// Kubernetes' /readyz: a failing check fails readiness unless Warn is set,
// and /readyz?verbose names every check and its result.
type Check struct {
	// Name names the check in /readyz?verbose ([+]name ok); a word, unique
	// among the checks. "ready" is the server's own (SetReady).
	Name string
	// Check returns nil when the check passes, else why not. It is called
	// on every probe, from the request's goroutine, concurrently with
	// itself: it must be cheap and safe for concurrent use.
	Check func() error
	// Warn lists a failing check under ?verbose without failing
	// readiness: for a condition an operator should see but that is no
	// reason to take the instance out of a load balancer.
	Warn bool
}

// Disk is what the server reads of the data dir's disk state
// (*diskguard.Guard); its methods are called from request goroutines.
type Disk interface {
	// Check returns an error wrapping diskguard.ErrDiskFull while writes
	// must be refused, else nil.
	Check() error
	Status() diskguard.Status
}

var _ Disk = (*diskguard.Guard)(nil)

// checkWritable refuses a write (an apply) while the disk is full.
func (s *Server) checkWritable() error {
	if s.opts.Disk == nil {
		return nil
	}
	return s.opts.Disk.Check()
}

// readyCheckName is the name of the check that SetReady drives;
// storeCheckName the server's other own check, featurestore.Store.Ready: a
// shard in which Pebble found on-disk corruption fails it, named;
// diskCheckName the warn-only check of Options.Disk.
const (
	readyCheckName = "ready"
	storeCheckName = "store"
	diskCheckName  = "disk"
)

// handleReadyz answers GET /readyz: 200 "ok" when every check passes, else
// 503 listing the failed checks. With ?verbose (any value), every check has
// a line: "[+]name ok", "[-]name failed: reason", or, for a failing Warn
// check, "[!]name warn: reason"; then "readyz check passed" or "readyz check
// failed".
func (s *Server) handleReadyz(w http.ResponseWriter, r *http.Request) {
	_, verbose := r.URL.Query()["verbose"]
	var b strings.Builder
	failed := false
	line := func(name string, err error, warn bool) {
		switch {
		case err == nil:
			if verbose {
				b.WriteString("[+]" + name + " ok\n")
			}
		case warn:
			if verbose {
				b.WriteString("[!]" + name + " warn: " + oneLine(err.Error()) + "\n")
			}
		default:
			failed = true
			b.WriteString("[-]" + name + " failed: " + oneLine(err.Error()) + "\n")
		}
	}
	line(readyCheckName, s.checkReady(), false)
	line(storeCheckName, s.store.Ready(), false)
	if s.opts.Disk != nil {
		line(diskCheckName, s.opts.Disk.Check(), true)
	}
	for _, c := range s.opts.ReadyChecks {
		line(c.Name, c.Check(), c.Warn)
	}
	w.Header()["Content-Type"] = hdrText
	switch {
	case failed:
		w.WriteHeader(http.StatusServiceUnavailable)
		b.WriteString("readyz check failed\n")
	case verbose:
		b.WriteString("readyz check passed\n")
	default:
		b.WriteString("ok\n")
	}
	_, _ = io.WriteString(w, b.String())
}

// handleLivez answers GET /livez and GET /healthz: the process is up and its
// router answers. It checks nothing else: restarting a process whose Kafka
// topic is missing would not make the topic appear.
func (s *Server) handleLivez(w http.ResponseWriter, _ *http.Request) {
	w.Header()["Content-Type"] = hdrText
	_, _ = io.WriteString(w, "ok\n")
}

// oneLine keeps a check's reason on its line.
func oneLine(s string) string {
	return strings.ReplaceAll(clipMessage(s), "\n", " ")
}
