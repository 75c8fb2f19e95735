package registry

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// The registry file: the whole registry as one JSON document, rewritten
// atomically on every change (temp file in the same directory, fsync,
// rename, fsync of the directory), so a crash leaves the old or the new
// file, never a mix. Kinds and aggregations are stored by their names in
// definitions, durations in milliseconds, hops resolved, so a later change
// of a default can never change a stored version.

const fileFormat = 1

type fileState struct {
	Format     int          `json:"format"`
	Generation uint64       `json:"generation"`
	NextViewID uint32       `json:"next_view_id"`
	Entities   []entityRec  `json:"entities"`
	Sources    []sourceRec  `json:"sources"`
	Views      []viewRec    `json:"views"`
	Services   []serviceRec `json:"services"`
	// History is who changed the registry (history.go); files written
	// before it have none and load with an empty history.
	History []HistoryEntry `json:"history,omitempty"`
}

type entityRec struct {
	Name    string `json:"name"`
	JoinKey string `json:"join_key"`
	Type    string `json:"type"`
	// KafkaKey is absent in registries written before it: the type's
	// default, which every entity had then.
	KafkaKey string `json:"kafka_key,omitempty"`
}

type sourceRec struct {
	Name            string     `json:"name"`
	Kind            string     `json:"kind"`
	Topic           string     `json:"topic,omitempty"`
	Format          string     `json:"format"`
	EntityKey       KeyFields  `json:"entity_key"` // a string for one field, as before compound keys
	EventTime       string     `json:"event_time"`
	Fields          []fieldRec `json:"fields"`
	DeadLetterTopic string     `json:"dead_letter_topic,omitempty"`
	StartOffset     string     `json:"start_offset,omitempty"`
}

type fieldRec struct {
	Name string `json:"name"`
	Kind string `json:"kind"`
}

// viewRec is one view name: its ID, the last version assigned and its live
// versions (none after every version was deleted: the name keeps its ID).
type viewRec struct {
	Name        string       `json:"name"`
	ID          uint32       `json:"id"`
	LastVersion int          `json:"last_version"`
	Versions    []versionRec `json:"versions"`
}

type versionRec struct {
	Version   int       `json:"version"`
	CreatedAt time.Time `json:"created_at"`
	// Entity is a one-entity version's entity (every file before compound
	// keys has it); Entities a compound version's, in key order.
	Entity   *entityRec  `json:"entity,omitempty"`
	Entities []entityRec `json:"entities,omitempty"`
	// Source is the source as of the version's creation.
	Source    sourceRec    `json:"source"`
	TTLMillis int64        `json:"ttl_ms"`
	Features  []featureRec `json:"features"`
}

type featureRec struct {
	Name         string `json:"name"`
	Aggregation  string `json:"aggregation"`
	Field        string `json:"field,omitempty"`
	WindowMillis int64  `json:"window_ms,omitempty"`
	HopMillis    int64  `json:"hop_ms,omitempty"`
	K            int    `json:"k,omitempty"`
}

type serviceRec struct {
	Name     string   `json:"name"`
	Features []string `json:"features"`
}

func entityToRec(e *Entity) entityRec {
	return entityRec{Name: e.Name, JoinKey: e.JoinKey, Type: kindName(e.Type), KafkaKey: e.KafkaKeyName()}
}

func sourceToRec(s *Source) sourceRec {
	r := sourceRec{
		Name: s.Name, Kind: s.Kind, Topic: s.Topic, Format: s.Format,
		EntityKey: slices.Clone(s.EntityKey), EventTime: s.EventTime,
		DeadLetterTopic: s.DeadLetterTopic, StartOffset: s.StartOffset,
		Fields: make([]fieldRec, len(s.Fields)),
	}
	for i, f := range s.Fields {
		r.Fields[i] = fieldRec{Name: f.Name, Kind: kindName(f.Kind)}
	}
	return r
}

func encodeSnapshot(s *Snapshot) ([]byte, error) {
	fs := fileState{
		Format:     fileFormat,
		Generation: s.gen,
		NextViewID: s.nextViewID,
		Entities:   []entityRec{},
		Sources:    []sourceRec{},
		Views:      []viewRec{},
		Services:   []serviceRec{},
		History:    s.history,
	}
	for _, e := range s.Entities() {
		fs.Entities = append(fs.Entities, entityToRec(e))
	}
	for _, src := range s.Sources() {
		fs.Sources = append(fs.Sources, sourceToRec(src))
	}
	for _, name := range sortedKeys(s.views) {
		h := s.views[name]
		vr := viewRec{Name: name, ID: h.id, LastVersion: h.lastVersion, Versions: []versionRec{}}
		for _, v := range h.live {
			rec := versionRec{
				Version:   v.Version,
				CreatedAt: v.CreatedAt,
				Source:    sourceToRec(v.origin),
				TTLMillis: v.TTL.Milliseconds(),
			}
			if len(v.Entities) == 1 {
				e := entityToRec(&v.Entities[0])
				rec.Entity = &e
			} else {
				for i := range v.Entities {
					rec.Entities = append(rec.Entities, entityToRec(&v.Entities[i]))
				}
			}
			for _, f := range v.Features {
				rec.Features = append(rec.Features, featureRec{
					Name: f.Name, Aggregation: f.Aggregation, Field: f.Field,
					WindowMillis: f.Window.Milliseconds(), HopMillis: f.Hop.Milliseconds(), K: f.K,
				})
			}
			vr.Versions = append(vr.Versions, rec)
		}
		fs.Views = append(fs.Views, vr)
	}
	for _, svc := range s.Services() {
		fs.Services = append(fs.Services, serviceRec{Name: svc.Name, Features: svc.Features})
	}
	return json.MarshalIndent(&fs, "", "  ")
}

func corruptf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrCorrupt, fmt.Sprintf(format, args...))
}

func entityFromRec(r entityRec) (*Entity, error) {
	e := &Entity{Name: r.Name, JoinKey: r.JoinKey}
	switch r.Type {
	case "string", "int64":
		e.Type = fieldKinds[r.Type]
	default:
		return nil, corruptf("entity %q: type %q", r.Name, r.Type)
	}
	if r.Name == "" || r.JoinKey == "" {
		return nil, corruptf("entity %q: missing name or join key", r.Name)
	}
	enc, msg := parseKafkaKey(r.KafkaKey, e.Type)
	if msg != "" {
		return nil, corruptf("entity %q: %s", r.Name, msg)
	}
	e.KafkaKey = enc
	return e, nil
}

func sourceFromRec(r sourceRec) (*Source, error) {
	s := &Source{
		Name: r.Name, Kind: r.Kind, Topic: r.Topic, Format: r.Format,
		EntityKey: r.EntityKey, EventTime: r.EventTime,
		DeadLetterTopic: r.DeadLetterTopic, StartOffset: r.StartOffset,
	}
	if r.Name == "" || (r.Kind != "push" && r.Kind != "kafka") {
		return nil, corruptf("source %q: kind %q", r.Name, r.Kind)
	}
	for i, f := range r.Fields {
		k, ok := fieldKinds[f.Kind]
		if !ok || f.Name == "" || (i > 0 && r.Fields[i-1].Name >= f.Name) {
			return nil, corruptf("source %q: field %q (%s) out of order or of unknown kind", r.Name, f.Name, f.Kind)
		}
		s.Fields = append(s.Fields, Field{Name: f.Name, Kind: k})
	}
	return s, nil
}

func decodeSnapshot(data []byte) (*Snapshot, error) {
	var fs fileState
	if err := json.Unmarshal(data, &fs); err != nil {
		return nil, corruptf("%v", err)
	}
	if fs.Format != fileFormat {
		return nil, corruptf("format %d, want %d", fs.Format, fileFormat)
	}
	if fs.NextViewID < 1 {
		return nil, corruptf("next_view_id %d", fs.NextViewID)
	}
	s := emptySnapshot()
	s.gen, s.nextViewID = fs.Generation, fs.NextViewID
	s.history = fs.History
	if len(s.history) > MaxHistory {
		s.history = s.history[len(s.history)-MaxHistory:]
	}
	for _, r := range fs.Entities {
		e, err := entityFromRec(r)
		if err != nil {
			return nil, err
		}
		s.entities[e.Name] = e
	}
	for _, r := range fs.Sources {
		src, err := sourceFromRec(r)
		if err != nil {
			return nil, err
		}
		s.sources[src.Name] = src
	}
	ids := map[uint32]string{}
	for _, vr := range fs.Views {
		if vr.ID == 0 || vr.ID >= fs.NextViewID || ids[vr.ID] != "" || s.views[vr.Name] != nil {
			return nil, corruptf("view %q: id %d reused or out of range", vr.Name, vr.ID)
		}
		ids[vr.ID] = vr.Name
		h := &viewHistory{id: vr.ID, lastVersion: vr.LastVersion}
		for i, r := range vr.Versions {
			if r.Version < 1 || r.Version > vr.LastVersion || (i > 0 && vr.Versions[i-1].Version >= r.Version) {
				return nil, corruptf("view %q: version %d out of order", vr.Name, r.Version)
			}
			recs := r.Entities
			if r.Entity != nil {
				recs = append([]entityRec{*r.Entity}, recs...)
			}
			if len(recs) == 0 || (r.Entity != nil && len(r.Entities) > 0) {
				return nil, corruptf("view %q v%d: want one entity or a list of entities", vr.Name, r.Version)
			}
			ents := make([]Entity, len(recs))
			for j, er := range recs {
				ent, err := entityFromRec(er)
				if err != nil {
					return nil, err
				}
				ents[j] = *ent
			}
			origin, err := sourceFromRec(r.Source)
			if err != nil {
				return nil, err
			}
			feats := make([]featureSpec, len(r.Features))
			for j, f := range r.Features {
				op, ok := lookupOp(f.Aggregation)
				if !ok {
					return nil, corruptf("view %q v%d: feature %q: aggregation %q", vr.Name, r.Version, f.Name, f.Aggregation)
				}
				feats[j] = featureSpec{
					name: f.Name, agg: f.Aggregation, field: f.Field, op: op,
					window: time.Duration(f.WindowMillis) * time.Millisecond,
					hop:    time.Duration(f.HopMillis) * time.Millisecond,
					k:      f.K,
				}
			}
			ttl := time.Duration(r.TTLMillis) * time.Millisecond
			v, err := buildView(vr.ID, vr.Name, r.Version, r.CreatedAt, ents, origin, s.sources[origin.Name], ttl, feats)
			if err != nil {
				return nil, corruptf("view %q v%d: %v", vr.Name, r.Version, err)
			}
			h.live = append(h.live, v)
		}
		s.views[vr.Name] = h
	}
	for _, r := range fs.Services {
		if r.Name == "" {
			return nil, corruptf("service without a name")
		}
		s.services[r.Name] = &Service{Name: r.Name, Features: r.Features}
	}
	s.index()
	return s, nil
}

// writeFileAtomic replaces path with data: a crash leaves either the old or
// the new contents.
func writeFileAtomic(path string, data []byte) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if _, err = f.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", tmp, err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", tmp, err)
	}
	if err = os.Rename(tmp, path); err != nil {
		return err
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync dir %s: %w", dir, err)
	}
	return nil
}

// FileGeneration returns the generation stored in the registry file at path
// without opening the registry (no lock, nothing created): 0 for a registry
// nothing was ever applied to. featured serve uses it to tell a data dir
// whose store is missing from a new one.
func FileGeneration(path string) (uint64, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("registry: read %s: %w", path, err)
	}
	var fs struct {
		Generation uint64 `json:"generation"`
	}
	if err := json.Unmarshal(data, &fs); err != nil {
		return 0, fmt.Errorf("load %s: %w", path, corruptf("%v", err))
	}
	return fs.Generation, nil
}
