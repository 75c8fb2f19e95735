package registry

import (
	"errors"
	"slices"
	"strings"
)

// service validates a feature service against next, the registry after
// the apply; with next nil (the views are invalid) only what the service
// says on its own.
func (c *compiler) service(next *Snapshot, p string, sd *ServiceDef, names map[string]string) {
	errsBefore := c.errs.len()
	if msg := checkName(sd.Name); msg != "" {
		c.errs.add(p+".name", "%s", msg)
	} else if first, dup := names[sd.Name]; dup {
		c.errs.add(p+".name", "duplicate feature service %s (first at %s)", sd.Name, first)
		return
	}
	if len(sd.Features) == 0 {
		c.errs.add(p+".features", "required: at least one feature reference")
	}
	seen := map[string]int{}
	for j, ref := range sd.Features {
		rp := index(p+".features", j)
		if first, dup := seen[ref]; dup {
			c.errs.add(rp, "duplicate reference %q (first at features[%d])", ref, first)
			continue
		}
		seen[ref] = j
		if next == nil {
			// Views are invalid: check the reference's syntax only.
			if _, err := ParseRef(ref); err != nil {
				c.errs.add(rp, "%v", err.(*RefError).Err)
			}
			continue
		}
		if _, err := next.resolve(ref); err != nil {
			var re *RefError
			if errors.As(err, &re) {
				err = re.Err
			}
			c.errs.add(rp, "%v", err)
		}
	}
	if c.errs.len() > errsBefore {
		return
	}
	names[sd.Name] = p
	s := &Service{Name: sd.Name, Features: slices.Clone(sd.Features)}
	old := c.cur.services[s.Name]
	ch := Change{Kind: KindService, Name: s.Name}
	switch {
	case old == nil:
		ch.Action = ActionCreate
		ch.Detail = plural(len(s.Features), "feature")
	case slices.Equal(old.Features, s.Features):
		ch.Action = ActionUnchanged
		s = old
	default:
		ch.Action = ActionUpdate
		ch.Detail = refsDiff(old.Features, s.Features)
	}
	c.services[s.Name] = s
	c.serviceChanges = append(c.serviceChanges, ch)
}

func refsDiff(old, cur []string) string {
	var d []string
	for _, r := range cur {
		if !slices.Contains(old, r) {
			d = append(d, "+"+r)
		}
	}
	for _, r := range old {
		if !slices.Contains(cur, r) {
			d = append(d, "-"+r)
		}
	}
	if len(d) == 0 {
		return "features reordered"
	}
	return "features " + strings.Join(d, " ")
}

// checkOtherServices re-resolves the services the document does not name
// against the registry after the apply: a new version that drops a feature
// must not break a service that follows the latest version.
func (c *compiler) checkOtherServices(next *Snapshot, inDoc map[string]string) {
	for _, name := range sortedKeys(c.cur.services) {
		if _, ok := inDoc[name]; ok {
			continue
		}
		for _, ref := range c.cur.services[name].Features {
			if _, err := next.resolve(ref); err != nil {
				path := ""
				if r, perr := ParseRef(ref); perr == nil {
					path = c.viewPaths[r.View]
				}
				c.errs.add(path, "feature service %s uses %q: %v; change the service in the same apply or pin the version it uses", name, ref, err)
			}
		}
	}
}
