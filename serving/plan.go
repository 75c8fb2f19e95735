package serving

import (
	"encoding/binary"
	"errors"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/featured-dev/featured/aggregate"
	peerv1 "github.com/featured-dev/featured/api/featured/peer/v1"
	"github.com/featured-dev/featured/featurestore"
	"github.com/featured-dev/featured/internal/partition"
	"github.com/featured-dev/featured/registry"
)

// A plan is a lookup's features resolved against one registry snapshot:
// the output columns, the entities they are keyed by, and the reads to do
// per entity row, one per view version. Plans are immutable and cached per snapshot, keyed
// by the request's feature list, so a steady stream of lookups resolves
// nothing and allocates nothing for it.
type plan struct {
	// service is the feature service the request named, "" for a list of
	// features (LookupInfo).
	service string
	// joinKeys are the entities the features are keyed by, in order of
	// first use; joinKey, entityName and entityKind are the first's. A
	// compound view is keyed by several. The native API and featured's gRPC
	// serve plans of one key (oneKey); Feast's endpoints join several per
	// row, as Feast does.
	joinKeys []planEntity
	// routeKeys are the distinct key tuples of the groups (indexes in
	// joinKeys, in key order), in order of first use. A routed lookup reads
	// and forwards per (row, route key): a compound key's state lives in its
	// first part's partition, so it is one unit, not one per part.
	routeKeys [][]int
	// routeKinds are each route key's part kinds (a compound key's
	// encoding needs them).
	routeKinds [][]aggregate.Kind
	// oneKey is set when every view read is keyed by all of joinKeys (in
	// its own order): one entity, or the entities of a compound key.
	oneKey     bool
	joinKey    string
	entityName string
	entityKind aggregate.Kind
	// names are the feature columns as served ("feat" or "view__feat"),
	// refs the references they came from.
	names []string
	refs  []string
	// rowValues is the most values one entity row returns: one per
	// feature, k per last_k feature (Options.MaxCells).
	rowValues int
	// views are the names of the views read, each once, for a
	// view-limited token's check (authorizeLookup).
	views []string
	// groups holds one read per view version, in order of first use.
	groups []readGroup
	// feastHeader is the start of the Feast response, through `"results":[`;
	// nativeHeader the start of the native response, through `"rows":[`.
	feastHeader  []byte
	nativeHeader []byte
	// peer is groups as PeerService's views, made on the first routed
	// lookup (peerViews).
	peerOnce sync.Once
	peer     []*peerv1.ViewRead
}

// planEntity is one entity a plan's features are keyed by.
type planEntity struct {
	joinKey string
	name    string
	kind    aggregate.Kind
	// kafkaKey places the entity's keys in partitions (keyenc.Partition).
	kafkaKey partition.KeyEncoding
	// first is the first feature keyed by it, for error messages.
	first int
}

// readGroup is the features of one view version that a lookup reads with
// one featurestore.Store.Read per entity.
type readGroup struct {
	// keys are the indexes in plan.joinKeys of the view's entities, in the
	// view's key order: one, or several for a compound view.
	keys     []int
	compound bool // len(keys) > 1
	// kinds are the kinds of the key parts, for the compound encoding.
	kinds    []aggregate.Kind
	vk       featurestore.ViewKey
	view     string // the view's name and version, for LookupInfo
	version  int
	layout   *aggregate.Layout
	features []int // feature indexes in the view version
	cols     []int // the output column of each
	// contiguous is set when cols is cols[0], cols[0]+1, ...: the read then
	// fills the output row in place.
	contiguous bool
	// rk is the index in plan.routeKeys of the group's key tuple: the unit
	// a routed lookup reads it with.
	rk int
}

// planKey builds the cache key of a request's feature list into dst. Every
// name is length-prefixed, so no name's bytes (a NUL, say) can make two
// lists share a key: a cached plan answers exactly the request it was built
// for.
func planKey(dst []byte, req *lookupRequest) []byte {
	if req.fullNames {
		dst = append(dst, 'F')
	} else {
		dst = append(dst, 'f')
	}
	if req.hasService {
		dst = append(dst, 's')
		dst = binary.AppendUvarint(dst, uint64(req.service.n))
		return append(dst, req.str(req.service)...)
	}
	dst = append(dst, 'l')
	for _, f := range req.features {
		dst = binary.AppendUvarint(dst, uint64(f.n))
		dst = append(dst, req.str(f)...)
	}
	return dst
}

// maxCachedPlans bounds a snapshot's plan cache; past it the cache starts
// over, so a client that sends ever new feature lists costs resolution, not
// memory.
const maxCachedPlans = 1024

// planCache is the plans of one registry snapshot. It is copied on write:
// readers load it with one atomic load and never lock.
type planCache struct {
	snap  *registry.Snapshot
	plans map[string]*plan
}

type plans struct {
	cur atomic.Pointer[planCache]
	mu  sync.Mutex // serializes writers
}

func (ps *plans) get(snap *registry.Snapshot, key []byte) *plan {
	c := ps.cur.Load()
	if c == nil || c.snap != snap {
		return nil
	}
	return c.plans[string(key)]
}

func (ps *plans) put(snap *registry.Snapshot, key []byte, p *plan) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	c := ps.cur.Load()
	var m map[string]*plan
	if c != nil && c.snap == snap && len(c.plans) < maxCachedPlans {
		m = make(map[string]*plan, len(c.plans)+1)
		for k, v := range c.plans {
			m[k] = v
		}
	} else {
		m = make(map[string]*plan, 1)
	}
	m[string(key)] = p
	ps.cur.Store(&planCache{snap: snap, plans: m})
}

// buildPlan resolves the request's features against snap. Every bad item is
// reported in one *RequestError: unknown or malformed references, an unknown
// service and duplicate column names. Whether the request's entity keys
// fit is checkEntities' concern: the plan is cached for any keys.
func buildPlan(snap *registry.Snapshot, req *lookupRequest, maxFeatures int) (*plan, error) {
	var rerr RequestError
	var resolved []registry.Resolved
	var refs []string
	var err error
	switch {
	case req.hasService && req.hasFeatures:
		rerr.add("feature_service", string(req.str(req.service)), "give either features or feature_service, not both", nil)
		return nil, &rerr
	case req.hasService:
		name := string(req.str(req.service))
		resolved, err = snap.ResolveService(name)
		if err != nil {
			rerr.add("feature_service", name, causeText(err), err)
			return nil, &rerr
		}
		refs = make([]string, len(resolved))
		for i := range resolved {
			refs[i] = resolved[i].Ref
		}
	case req.hasFeatures:
		if len(req.features) == 0 {
			rerr.add("features", "", "empty: name at least one feature", nil)
			return nil, &rerr
		}
		refs = make([]string, len(req.features))
		for i, f := range req.features {
			refs[i] = string(req.str(f))
		}
		resolved, err = snap.Resolve(refs)
		if err != nil {
			var rs *registry.ResolveError
			if !errors.As(err, &rs) {
				return nil, err
			}
			// Name each bad reference by its index in the request.
			bad := make(map[string]bool, len(rs.Refs))
			for _, r := range rs.Refs {
				bad[r.Ref] = true
			}
			reported := make(map[string]bool, len(rs.Refs))
			for _, r := range rs.Refs {
				for i, ref := range refs {
					if ref == r.Ref && !reported[ref] {
						rerr.add("features["+strconv.Itoa(i)+"]", ref, causeText(r.Err), r)
						reported[ref] = true
					}
				}
			}
			return nil, &rerr
		}
	default:
		rerr.add("features", "", "missing: give features or feature_service", nil)
		return nil, &rerr
	}
	if maxFeatures > 0 && len(resolved) > maxFeatures {
		return nil, &LimitError{Field: "features", Limit: maxFeatures, What: "features"}
	}
	if len(resolved) == 0 {
		rerr.add("features", "", "empty: name at least one feature", nil)
		return nil, &rerr
	}

	p := &plan{
		names: make([]string, len(resolved)),
		refs:  refs,
	}
	if req.hasService {
		p.service = string(req.str(req.service))
	}
	field := p.field
	seen := make(map[string]int, len(resolved))
	groupOf := make(map[featurestore.ViewKey]int)
	for i := range resolved {
		r := &resolved[i]
		v := r.View
		keys := make([]int, 0, len(v.Entities))
		conflict := false
		for _, ent := range v.Entities {
			key := -1
			for j := range p.joinKeys {
				if p.joinKeys[j].joinKey == ent.JoinKey {
					key = j
				}
			}
			if key < 0 {
				key = len(p.joinKeys)
				p.joinKeys = append(p.joinKeys, planEntity{joinKey: ent.JoinKey, name: ent.Name, kind: ent.Type, kafkaKey: ent.KafkaKey, first: i})
			} else if e := p.joinKeys[key]; e.name != ent.Name || e.kind != ent.Type {
				// Two entities of one join key would make one request column
				// mean two things.
				rerr.add(field(i), refs[i], "view "+strconv.Quote(v.Name)+" is keyed by entity "+
					strconv.Quote(ent.Name)+" with join key "+strconv.Quote(ent.JoinKey)+", but "+
					field(e.first)+" by entity "+strconv.Quote(e.name)+" with the same join key", nil)
				conflict = true
				break
			}
			keys = append(keys, key)
		}
		if conflict {
			continue
		}
		name := r.Name
		if req.fullNames {
			name = r.FullName()
		}
		if j, dup := seen[name]; dup {
			reason := "column name " + strconv.Quote(name) + " is also produced by " + field(j)
			if !req.fullNames {
				reason += "; set full_feature_names to name columns view__feature"
			}
			rerr.add(field(i), refs[i], reason, errDuplicateName)
			continue
		}
		seen[name] = i
		p.names[i] = name
		if spec := v.Layout.Specs()[r.Feature]; spec.Op == aggregate.OpLastK && spec.K > 1 {
			p.rowValues += spec.K
		} else {
			p.rowValues++
		}
		vk := featurestore.ViewKey{ID: v.ID, Version: uint32(v.Version)}
		g, ok := groupOf[vk]
		if !ok {
			g = len(p.groups)
			groupOf[vk] = g
			p.groups = append(p.groups, readGroup{keys: keys, compound: len(keys) > 1, kinds: v.KeyKinds(),
				vk: vk, view: v.Name, version: v.Version, layout: v.Layout})
			if !slices.Contains(p.views, v.Name) {
				p.views = append(p.views, v.Name)
			}
		}
		p.groups[g].features = append(p.groups[g].features, r.Feature)
		p.groups[g].cols = append(p.groups[g].cols, i)
	}
	if err := rerr.err(); err != nil {
		return nil, err
	}
	p.joinKey, p.entityName, p.entityKind = p.joinKeys[0].joinKey, p.joinKeys[0].name, p.joinKeys[0].kind
	p.oneKey = true
	for i := range p.groups {
		if len(p.groups[i].keys) != len(p.joinKeys) {
			p.oneKey = false // keys are numbered in order of first use
		}
	}
	for i := range p.groups {
		g := &p.groups[i]
		g.rk = slices.IndexFunc(p.routeKeys, func(k []int) bool { return slices.Equal(k, g.keys) })
		if g.rk < 0 {
			g.rk = len(p.routeKeys)
			p.routeKeys = append(p.routeKeys, g.keys)
			p.routeKinds = append(p.routeKinds, g.kinds)
		}
		g.contiguous = true
		for j, c := range g.cols {
			if c != g.cols[0]+j {
				g.contiguous = false
			}
		}
	}
	p.feastHeader = appendFeastHeader(nil, p)
	p.nativeHeader = appendNativeHeader(nil, p)
	return p, nil
}

// field names feature i of the request in error messages.
func (p *plan) field(i int) string {
	if p.service != "" {
		return "feature_service." + strconv.Itoa(i)
	}
	return "features[" + strconv.Itoa(i) + "]"
}

// causeText is the reason of a registry error without its package prefix.
func causeText(err error) string {
	var re *registry.RefError
	if errors.As(err, &re) {
		err = re.Err
	}
	return strings.TrimPrefix(err.Error(), "registry: ")
}
