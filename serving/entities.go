package serving

import (
	"slices"
	"strconv"
	"strings"

	"github.com/featured-dev/featured/aggregate"
	"github.com/featured-dev/featured/internal/keyenc"
	"github.com/featured-dev/featured/registry"
)

// checkEntities binds the request's entity keys to the plan and checks
// them: every join key of the plan is given, all with one value per entity
// row, each value of its entity's type.
//
// The native API and featured's gRPC (feast false) serve one key: every
// view of the plan must be keyed by the same join keys (one, or the several
// of a compound key), and the request must send exactly those. Feast's
// endpoints (feast true) do what Feast's feature server does: features of
// several entities are joined per row, each view reading its own join
// key's column; a key that is the join key of another entity of snap is
// returned as an extra column (Feast returns every join key it knows); a key
// no entity has is ignored, as Feast ignores it; and a decimal string sent
// for an int64 key is that integer (the Feast CLI sends -e driver_id=1001
// as "1001").
func checkEntities(snap *registry.Snapshot, p *plan, req *lookupRequest, feast bool) error {
	var rerr RequestError
	if !req.hasEntities || len(req.keys) == 0 {
		want := make([]string, len(p.joinKeys))
		for j := range p.joinKeys {
			want[j] = strconv.Quote(p.joinKeys[j].joinKey) + ": [...]"
		}
		rerr.add("entities", "", "missing: give {"+strings.Join(want, ", ")+"}", nil)
		return &rerr
	}
	if !feast {
		if err := checkOneEntity(p, req); err != nil {
			return err
		}
	}
	// Bind the plan's join keys, then the other keys Feast returns.
	req.keyOf = req.keyOf[:0]
	for range p.joinKeys {
		req.keyOf = append(req.keyOf, -1)
	}
	req.outKeys = req.outKeys[:0]
	req.keyKinds = req.keyKinds[:0]
	rows := -1
	for k, ks := range req.keys {
		name := string(req.str(ks))
		n := int(req.colOff[k+1] - req.colOff[k])
		if rows < 0 {
			rows = n
		} else if n != rows {
			rerr.add("entities."+name, "", "has "+strconv.Itoa(n)+" values, but entities."+string(req.str(req.keys[0]))+
				" has "+strconv.Itoa(rows)+"; every key takes one value per entity row", nil)
		}
		kind, known := aggregate.Kind(0), false
		for j := range p.joinKeys {
			if p.joinKeys[j].joinKey == name {
				req.keyOf[j], kind, known = k, p.joinKeys[j].kind, true
			}
		}
		if !known {
			for _, e := range snap.Entities() {
				if e.JoinKey == name {
					kind, known = e.Type, true
					break
				}
			}
		}
		req.keyKinds = append(req.keyKinds, kind)
		if known {
			req.outKeys = append(req.outKeys, k)
		}
	}
	for j := range p.joinKeys {
		if req.keyOf[j] < 0 {
			e := &p.joinKeys[j]
			rerr.add("entities."+e.joinKey, "", "missing: the requested features of entity "+strconv.Quote(e.name)+
				" are keyed by join key "+strconv.Quote(e.joinKey), nil)
		}
	}
	if err := rerr.err(); err != nil {
		return err
	}
	for _, k := range req.outKeys {
		checkValues(req, k, req.keyKinds[k], feast, &rerr)
		if len(rerr.Problems) >= 20 {
			break
		}
	}
	if err := rerr.err(); err != nil {
		return err
	}
	req.values = req.col(req.keyOf[0])
	return nil
}

// checkOneEntity is the native API's rule: one key per request (one
// entity, or the entities of a compound key), sent under its join keys
// alone.
func checkOneEntity(p *plan, req *lookupRequest) error {
	var rerr RequestError
	if !p.oneKey {
		// The first group whose key differs from the first's names it.
		g0 := &p.groups[0]
		for i := range p.groups {
			g := &p.groups[i]
			if slices.Equal(g.keys, g0.keys) {
				continue
			}
			c := g.cols[0]
			rerr.add(p.field(c), p.refs[c], "keyed by "+p.keyText(g.keys)+", but "+p.field(g0.cols[0])+" is keyed by "+
				p.keyText(g0.keys)+"; one request serves one entity key (POST /get-online-features joins several)", nil)
			return &rerr
		}
	}
	for _, k := range req.keys {
		name := string(req.str(k))
		known := false
		for j := range p.joinKeys {
			known = known || p.joinKeys[j].joinKey == name
		}
		if known {
			continue
		}
		if len(p.joinKeys) == 1 {
			rerr.add("entities."+name, name, "not the join key of the requested features: they are keyed by entity "+
				strconv.Quote(p.entityName)+" with join key "+strconv.Quote(p.joinKey), nil)
			continue
		}
		rerr.add("entities."+name, name, "not a join key of the requested features: they are keyed by "+p.keyText(p.groups[0].keys), nil)
	}
	return rerr.err()
}

// keyText names the key of join keys ks: entity "user" with join key
// "user_id", or entities "driver", "customer" with join keys "driver_id",
// "customer_id".
func (p *plan) keyText(ks []int) string {
	if len(ks) == 1 {
		e := &p.joinKeys[ks[0]]
		return "entity " + strconv.Quote(e.name) + " (join key " + strconv.Quote(e.joinKey) + ")"
	}
	names, keys := make([]string, len(ks)), make([]string, len(ks))
	for i, k := range ks {
		names[i], keys[i] = strconv.Quote(p.joinKeys[k].name), strconv.Quote(p.joinKeys[k].joinKey)
	}
	return "entities " + strings.Join(names, ", ") + " (join keys " + strings.Join(keys, ", ") + ")"
}

// checkValues checks the values of request key k against its entity's
// kind, converting decimal strings of an int64 key in place when feast.
func checkValues(req *lookupRequest, k int, kind aggregate.Kind, feast bool, rerr *RequestError) {
	key := string(req.str(req.keys[k]))
	col := req.col(k)
	for i := range col {
		v := &col[i]
		field := func() string { return "entities." + key + "[" + strconv.Itoa(i) + "]" }
		switch {
		case kind == aggregate.KindInt64 && !v.isInt && feast:
			s := req.str(v.s)
			n, err := strconv.ParseInt(unsafeString(s), 10, 64)
			if err != nil {
				rerr.add(field(), clipValue(string(s)), "entity key of an int64 join key: not a decimal int64", nil)
				break
			}
			*v = entityValue{isInt: true, i: n}
		case kind == aggregate.KindInt64 && !v.isInt:
			rerr.add(field(), string(req.str(v.s)), "join key "+strconv.Quote(key)+" has int64 keys; send a JSON integer", nil)
		case kind == aggregate.KindString && v.isInt:
			rerr.add(field(), strconv.FormatInt(v.i, 10), "join key "+strconv.Quote(key)+" has string keys; send a JSON string", nil)
		case !v.isInt:
			// The rule every path shares (internal/keyenc): a key that
			// could never have been stored is refused, not reported
			// NOT_FOUND.
			if err := keyenc.Check(unsafeString(req.str(v.s))); err != nil {
				rerr.add(field(), clipValue(string(req.str(v.s))), strings.TrimPrefix(err.Error(), "keyenc: "), nil)
			}
		}
		if len(rerr.Problems) >= 20 {
			return // enough to see the pattern
		}
	}
}
