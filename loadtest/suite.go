package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"math"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// A suite is the comparison matrix for one system (scripts/bench-compare.sh
// runs one suite per system, one system at a time, all with the same
// flags):
//
//  1. per workload and repetition, a closed-loop run at -conns connections
//     (phase "max": the maximum throughput), then an open-loop run at the
//     workload's latency rate (phase "latency"). The rate is the workload's
//     -rates entry, or half the system's first measured maximum when that is
//     lower (a system is never measured past its knee, where every open-loop
//     latency is just queueing; the report says which rate each row used);
//  2. per workload named in -sweep, once, open-loop runs at each -sweep-rates
//     rate, in increasing order, stopping after the first rate the system
//     could not sustain (phase "sweep": the latency-vs-load chart).
//
// For the push target, the workloads are the push sizes (-push-events) and
// only phase 1's closed loop runs.

type suiteOptions struct {
	base       Options
	workloads  []Workload
	pushEvents []int
	reps       int
	rates      map[string]float64
	sweep      map[string]bool
	sweepRates []float64
	sweepDur   time.Duration
	out        string
}

// defaultRates are the open-loop rates of the latency phase: 1x50 at the
// issue's 5k req/s goal, the others at loads every featured target
// sustains with room to spare on 2 cores.
const defaultRates = "1x50=5000,10x50=1000,50x50=400,100x50=200,1x250=2000"

func suiteCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("suite", flag.ContinueOnError)
	fs.SetOutput(stderr)
	s := suiteOptions{}
	runFlags(fs, &s.base)
	workloads := fs.String("workloads", "1x50,10x50,100x50,1x250", "comma-separated ENTITIESxFEATURES")
	pushEvents := fs.String("push-events-list", "1,100", "push: comma-separated events per push")
	fs.IntVar(&s.reps, "reps", 3, "repetitions of each measured run")
	rates := fs.String("rates", defaultRates, "latency phase: WORKLOAD=req/s,...")
	sweep := fs.String("sweep", "1x50", "workloads whose latency-vs-load sweep to run (comma-separated, empty: none)")
	sweepRates := fs.String("sweep-rates", "100,250,500,1000,2000,5000,10000,20000,40000", "sweep: offered req/s, increasing")
	fs.DurationVar(&s.sweepDur, "sweep-duration", 2*time.Second, "sweep: measured time per rate")
	fs.StringVar(&s.out, "out", "", "directory for the result files")
	progress := fs.Bool("progress", false, "print a progress line every second")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if s.out == "" {
		return fmt.Errorf("suite: -out: missing")
	}
	if s.reps < 1 {
		return fmt.Errorf("suite: -reps: %d is not positive", s.reps)
	}
	if *progress {
		s.base.Progress = stderr
	}
	var err error
	if s.workloads, err = parseWorkloads(*workloads); err != nil {
		return err
	}
	if s.pushEvents, err = parseInts("push-events-list", *pushEvents); err != nil {
		return err
	}
	if s.rates, err = parseRates(*rates); err != nil {
		return err
	}
	s.sweep = map[string]bool{}
	for _, w := range strings.Split(*sweep, ",") {
		if w = strings.TrimSpace(w); w != "" {
			s.sweep[w] = true
		}
	}
	sr, err := parseInts("sweep-rates", *sweepRates)
	if err != nil {
		return err
	}
	for _, r := range sr {
		s.sweepRates = append(s.sweepRates, float64(r))
	}
	return runSuite(ctx, s, stdout)
}

func runSuite(ctx context.Context, s suiteOptions, stdout io.Writer) error {
	one := func(o Options, name string) (*Result, error) {
		res, err := Run(ctx, o)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		fmt.Fprintln(stdout, res.Summary())
		return res, res.WriteFile(filepath.Join(s.out, name+".json"))
	}
	if s.base.Target == TargetPush {
		for _, n := range s.pushEvents {
			for rep := 1; rep <= s.reps; rep++ {
				o := s.base
				o.Workload.PushEvents, o.Phase, o.Rep = n, "max", rep
				if _, err := one(o, fmt.Sprintf("%s__push%d__max__r%d", o.Label, n, rep)); err != nil {
					return err
				}
			}
		}
		return nil
	}
	for _, w := range s.workloads {
		rate := 0.0
		for rep := 1; rep <= s.reps; rep++ {
			o := s.base
			o.Workload.Entities, o.Workload.Features = w.Entities, w.Features
			o.Phase, o.Rep = "max", rep
			res, err := one(o, fmt.Sprintf("%s__%s__max__r%d", o.Label, w.Name(), rep))
			if err != nil {
				return err
			}
			if rep == 1 {
				rate = latencyRate(s.rates[w.Name()], res.ThroughputRPS)
			}
			o.Phase, o.Rate, o.NoVerify = "latency", rate, true
			if _, err := one(o, fmt.Sprintf("%s__%s__latency__r%d", o.Label, w.Name(), rep)); err != nil {
				return err
			}
		}
		if !s.sweep[w.Name()] {
			continue
		}
		for _, r := range s.sweepRates {
			o := s.base
			o.Workload.Entities, o.Workload.Features = w.Entities, w.Features
			o.Phase, o.Rate, o.Duration, o.NoVerify = "sweep", r, s.sweepDur, true
			o.Warmup = min(o.Warmup, 500*time.Millisecond)
			res, err := one(o, fmt.Sprintf("%s__%s__sweep__%07.0f", o.Label, w.Name(), r))
			if err != nil {
				return err
			}
			if saturated(res) {
				break
			}
		}
	}
	return nil
}

// latencyRate is want, or half of max when that is lower, to two
// significant digits.
func latencyRate(want, max float64) float64 {
	if want <= 0 {
		want = 1000
	}
	r := want
	if half := max / 2; half < r {
		r = half
	}
	if r < 1 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(r))-1)
	return math.Floor(r/p) * p
}

// saturated says a run could not keep up with its offered rate: requests
// left unsent, or under 90% of the rate answered, or p99 over a second.
func saturated(r *Result) bool {
	return r.Unsent > 0 || r.ThroughputRPS < 0.9*r.OfferedRPS || r.Latency.P99 > 1e6
}

func parseWorkloads(s string) ([]Workload, error) {
	var out []Workload
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		e, feat, ok := strings.Cut(f, "x")
		ne, err1 := strconv.Atoi(e)
		nf, err2 := strconv.Atoi(feat)
		if !ok || err1 != nil || err2 != nil {
			return nil, fmt.Errorf("suite: -workloads: %q is not ENTITIESxFEATURES", f)
		}
		w := Workload{Entities: ne, Features: nf}
		w.EnsureDefaults()
		if err := w.Validate(); err != nil {
			return nil, fmt.Errorf("suite: -workloads: %q: %w", f, err)
		}
		out = append(out, w)
	}
	return out, nil
}

func parseInts(flagName, s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("suite: -%s: %q is not a positive integer", flagName, f)
		}
		out = append(out, n)
	}
	return out, nil
}

func parseRates(s string) (map[string]float64, error) {
	out := map[string]float64{}
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		k, v, ok := strings.Cut(f, "=")
		r, err := strconv.ParseFloat(v, 64)
		if !ok || err != nil || r <= 0 {
			return nil, fmt.Errorf("suite: -rates: %q is not WORKLOAD=req/s", f)
		}
		out[k] = r
	}
	return out, nil
}
