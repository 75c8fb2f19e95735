package telemetry

import (
	"errors"
	"fmt"

	"go.opentelemetry.io/otel/metric"
)

// collector creates the observable instruments of one callback, keeping
// the first error and the list RegisterCallback needs.
type collector struct {
	m           metric.Meter
	errs        []error
	instruments []metric.Observable
}

func newCollector(m metric.Meter) *collector { return &collector{m: m} }

func (c *collector) counter(name, unit, desc string) metric.Int64ObservableCounter {
	i, err := c.m.Int64ObservableCounter(name, metric.WithUnit(unit), metric.WithDescription(desc))
	c.errs = append(c.errs, err)
	c.instruments = append(c.instruments, i)
	return i
}

func (c *collector) gauge(name, unit, desc string) metric.Int64ObservableGauge {
	i, err := c.m.Int64ObservableGauge(name, metric.WithUnit(unit), metric.WithDescription(desc))
	c.errs = append(c.errs, err)
	c.instruments = append(c.instruments, i)
	return i
}

func (c *collector) floatGauge(name, unit, desc string) metric.Float64ObservableGauge {
	i, err := c.m.Float64ObservableGauge(name, metric.WithUnit(unit), metric.WithDescription(desc))
	c.errs = append(c.errs, err)
	c.instruments = append(c.instruments, i)
	return i
}

func (c *collector) err() error { return joinErrs(c.errs) }

func joinErrs(errs []error) error {
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("telemetry: instruments: %w", err)
	}
	return nil
}
