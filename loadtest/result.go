package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"time"
)

// Result is one run's outcome, written as the JSON result file (-out). The
// field names are the file format: reports read them back (report.go).
type Result struct {
	Label    string    `json:"label"`
	Target   string    `json:"target"`
	Addr     string    `json:"addr"`
	Phase    string    `json:"phase,omitempty"`
	Rep      int       `json:"rep,omitempty"`
	Started  time.Time `json:"started"`
	Workload struct {
		Name       string `json:"name"`
		Entities   int    `json:"entities"`
		Features   int    `json:"features"`
		Service    string `json:"service"`
		Unique     int    `json:"unique_requests"`
		Seed       uint64 `json:"seed"`
		PushEvents int    `json:"push_events,omitempty"`
	} `json:"workload"`
	Mode        string  `json:"mode"`                  // open or closed
	OfferedRPS  float64 `json:"offered_rps,omitempty"` // open loop
	Connections int     `json:"connections"`
	WarmupS     float64 `json:"warmup_s"`
	DurationS   float64 `json:"duration_s"`

	// Requests completed without error in the measured part (open loop:
	// scheduled in it; closed loop: started in it).
	Requests int64 `json:"requests"`
	Errors   int64 `json:"errors"`
	// Unsent counts open-loop requests scheduled in the measured part that
	// were never sent: still queued Drain after the end.
	Unsent        int64    `json:"unsent"`
	ErrorSamples  []string `json:"error_samples,omitempty"`
	ResponseBytes int64    `json:"response_bytes"`
	ThroughputRPS float64  `json:"throughput_rps"`
	BytesPerS     float64  `json:"bytes_per_s"`
	// Events and EventsPerS count accepted push events (push target).
	Events     int64   `json:"events,omitempty"`
	EventsPerS float64 `json:"events_per_s,omitempty"`

	// Latency is from the scheduled send time (open loop) or the actual
	// send time (closed loop) to the end of the answer, microseconds.
	Latency Latency `json:"latency_us"`
	// SendLag (open loop) is how late each request was sent after its
	// scheduled time: the pacer's lateness plus the wait for a free
	// connection when all of them await slower answers (server queueing).
	SendLag *Latency `json:"send_lag_us,omitempty"`
	// PacerLag (open loop) is the pacer's own lateness in handing out each
	// request: the generator's share of Latency when connections are free.
	PacerLag *Latency `json:"pacer_lag_us,omitempty"`

	ClientCPU CPU    `json:"client_cpu"`
	ServerCPU *CPU   `json:"server_cpu,omitempty"`
	ServerPID []int  `json:"server_pids,omitempty"`
	CPUError  string `json:"cpu_error,omitempty"`

	Host struct {
		GoVersion  string  `json:"go_version"`
		NumCPU     int     `json:"num_cpu"`
		GOMAXPROCS int     `json:"gomaxprocs"`
		LoadAvg1   float64 `json:"loadavg_1m_at_start"`
	} `json:"host"`
}

func (r *run) newResult() *Result {
	o := r.o
	res := &Result{
		Label: o.Label, Target: o.Target, Addr: o.Addr, Phase: o.Phase, Rep: o.Rep,
		Started: r.start.UTC().Round(time.Millisecond), Mode: o.Mode(), OfferedRPS: o.Rate,
		Connections: o.Connections, WarmupS: o.Warmup.Seconds(), DurationS: o.Duration.Seconds(),
		ServerPID: o.ServerPIDs,
	}
	w := o.Workload
	res.Workload.Name = w.Name()
	res.Workload.Entities, res.Workload.Features = w.Entities, w.Features
	res.Workload.Service, res.Workload.Unique, res.Workload.Seed = ServiceName(w.Features), w.Unique, w.Seed
	if o.Target == TargetPush {
		res.Workload.Name = fmt.Sprintf("push%d", w.PushEvents)
		res.Workload.Entities, res.Workload.Features, res.Workload.Service = 0, 0, IngestSource
		res.Workload.PushEvents = w.PushEvents
	}
	res.Host.GoVersion = runtime.Version()
	res.Host.NumCPU = runtime.NumCPU()
	res.Host.GOMAXPROCS = runtime.GOMAXPROCS(0)
	res.Host.LoadAvg1 = loadAvg1()
	return res
}

// finish merges the workers' histograms and counters into res.
func (r *run) finish(res *Result, cpu cpuSpan) {
	hist, lag := newHist(), newHist()
	for _, w := range r.workers {
		w.mu.Lock()
		hist.Merge(w.hist)
		lag.Merge(w.lag)
		res.Requests += w.ok
		res.Errors += w.errs
		res.Unsent += w.unsent
		res.ResponseBytes += w.n
		res.Events += w.evts
		for _, s := range w.errSamples {
			if len(res.ErrorSamples) < maxErrSamples {
				res.ErrorSamples = append(res.ErrorSamples, s)
			}
		}
		w.mu.Unlock()
	}
	secs := r.o.Duration.Seconds()
	res.ThroughputRPS = round3(float64(res.Requests) / secs)
	res.BytesPerS = round3(float64(res.ResponseBytes) / secs)
	if res.Events > 0 {
		res.EventsPerS = round3(float64(res.Events) / secs)
	}
	res.Latency = summarize(hist)
	if r.o.Rate > 0 {
		l, p := summarize(lag), summarize(r.pacerLag)
		res.SendLag, res.PacerLag = &l, &p
	}
	res.ClientCPU = newCPU(cpu.self, cpu.wall, res.Requests)
	if len(r.o.ServerPIDs) > 0 {
		if cpu.serverErr != nil {
			res.CPUError = cpu.serverErr.Error()
		} else {
			c := newCPU(cpu.server, cpu.wall, res.Requests)
			res.ServerCPU = &c
		}
	}
}

// WriteFile writes res as indented JSON, creating the directory.
func (res *Result) WriteFile(path string) error {
	b, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// ReadResult reads a result file, refusing unknown fields (a file from
// another format version is an error, not a silent zero).
func ReadResult(path string) (*Result, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var res Result
	if err := dec.Decode(&res); err != nil {
		return nil, fmt.Errorf("read result %s: %w", path, err)
	}
	return &res, nil
}

// Summary is a one-line human summary of res.
func (res *Result) Summary() string {
	s := fmt.Sprintf("%s %s %s %s: %.0f req/s, p50 %s p90 %s p99 %s p99.9 %s max %s, errors %d, %.1f MB/s, client CPU %.2f cores (%.1f µs/req)",
		res.Label, res.Target, res.Workload.Name, res.modeString(), res.ThroughputRPS,
		ms(res.Latency.P50), ms(res.Latency.P90), ms(res.Latency.P99), ms(res.Latency.P999), ms(res.Latency.Max),
		res.Errors, res.BytesPerS/1e6, res.ClientCPU.Cores, res.ClientCPU.USPerRequest)
	if res.ServerCPU != nil {
		s += fmt.Sprintf(", server CPU %.2f cores (%.1f µs/req)", res.ServerCPU.Cores, res.ServerCPU.USPerRequest)
	}
	if res.SendLag != nil {
		s += fmt.Sprintf(", send lag p99 %s (pacer %s)", ms(res.SendLag.P99), ms(res.PacerLag.P99))
	}
	if res.Unsent > 0 {
		s += fmt.Sprintf(", unsent %d", res.Unsent)
	}
	if res.EventsPerS > 0 {
		s += fmt.Sprintf(", %.0f events/s", res.EventsPerS)
	}
	return s
}

func (res *Result) modeString() string {
	if res.Mode == "open" {
		return fmt.Sprintf("open %.0f req/s x%d conns", res.OfferedRPS, res.Connections)
	}
	return fmt.Sprintf("closed x%d conns", res.Connections)
}
