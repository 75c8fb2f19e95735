package serving

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	featuredv1 "github.com/featured-dev/featured/api/featured/v1"
	"github.com/featured-dev/featured/featurestore"
	"github.com/featured-dev/featured/registry"
)

// Kinds of DELETE /v1/{kind}/{name}.
const (
	kindView    = registry.KindView
	kindSource  = registry.KindSource
	kindEntity  = registry.KindEntity
	kindService = registry.KindService
)

// planResponse is the JSON answer of apply, plan and delete: the changes and
// the plan as text (what `featured plan` prints).
type planResponse struct {
	Changes []registry.Change `json:"changes"`
	Text    string            `json:"text"`
}

func newPlanResponse(p *registry.Plan) planResponse {
	r := planResponse{Changes: p.Changes, Text: p.String()}
	if r.Changes == nil {
		r.Changes = []registry.Change{}
	}
	return r
}

// definitionsFromBody parses a definitions document by its Content-Type:
// application/json as JSON; YAML types, text/plain or none as YAML.
func (s *Server) definitionsFromBody(r *http.Request) (*registry.Definitions, error) {
	mt, err := mediaType(r)
	if err != nil {
		return nil, err
	}
	var parse func([]byte) (*registry.Definitions, error)
	switch mt {
	case "application/json":
		parse = registry.ParseJSON
	case "", "application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml", "text/plain":
		parse = registry.ParseYAML
	default:
		return nil, fmt.Errorf("%w: Content-Type %q; send application/yaml or application/json", ErrUnsupportedMediaType, mt)
	}
	body, err := readBody(r, nil, s.opts.MaxBodyBytes)
	if err != nil {
		return nil, err
	}
	return parse(body)
}

func parseDefinitions(text string, format featuredv1.DefinitionsFormat) (*registry.Definitions, error) {
	if format == featuredv1.DefinitionsFormat_DEFINITIONS_FORMAT_JSON {
		return registry.ParseJSON([]byte(text))
	}
	return registry.ParseYAML([]byte(text))
}

// handleApply is POST /v1/apply[?backfill=true]. With backfill, every
// ingested view version the apply created is then built from the offline
// log (Options.Backfill); the query is checked before anything is applied.
func (s *Server) handleApply(w http.ResponseWriter, r *http.Request) {
	if err := s.checkReady(); err != nil {
		s.writeError(w, r, err)
		return
	}
	if err := s.checkWritable(); err != nil {
		s.writeError(w, r, err)
		return
	}
	backfill, err := s.backfillParam(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	defs, err := s.definitionsFromBody(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	p, err := s.reg.ApplyBy(defs, registry.Caller{Name: caller(r.Context()), Remote: r.RemoteAddr})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.audit(r.Context(), r.RemoteAddr, "apply", "generation", s.reg.Snapshot().Generation(), "changes", p.String())
	resp := applyResponse{planResponse: newPlanResponse(p)}
	if backfill {
		resp.Backfills, err = s.backfillCreated(r.Context(), p)
		s.audit(r.Context(), r.RemoteAddr, "backfill", "after", "apply", "backfills", resp.Backfills, "err", err)
		if err != nil {
			st := backfillStatus(err)
			if st == http.StatusInternalServerError {
				s.opts.Logger.Error("serving: backfill after apply", "err", err)
			} else {
				s.opts.Logger.Warn("serving: backfill after apply", "err", err)
			}
			resp.Error = &errorDetail{Status: st, Message: err.Error()}
			s.writeValue(w, r, st, resp)
			return
		}
	}
	s.writeValue(w, r, http.StatusOK, resp)
}

func (s *Server) handlePlan(w http.ResponseWriter, r *http.Request) {
	if err := s.checkReady(); err != nil {
		s.writeError(w, r, err)
		return
	}
	defs, err := s.definitionsFromBody(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	p, err := s.reg.Plan(defs)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.writeValue(w, r, http.StatusOK, newPlanResponse(p))
}

func (s *Server) writeValue(w http.ResponseWriter, r *http.Request, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, status, body)
}

func (s *Server) handleDelete(kind string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := s.checkReady(); err != nil {
			s.writeError(w, r, err)
			return
		}
		version, err := parseVersion(r.URL.Query().Get("version"))
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		if version != 0 && kind != kindView {
			s.writeError(w, r, &RequestError{Problems: []Problem{{Field: "version", Value: r.URL.Query().Get("version"), Reason: "only views have versions"}}})
			return
		}
		p, err := s.delete(r.Context(), r.RemoteAddr, kind, chi.URLParam(r, "name"), version)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		s.writeValue(w, r, http.StatusOK, newPlanResponse(p))
	}
}

// delete deletes a definition and, for views, the stored state of every
// version deleted. The registry change comes first: once it is published no
// lookup or ingest addresses those versions, so dropping their state races
// with nothing. A failed drop is reported, and the state is left to expire by
// its TTL.
func (s *Server) delete(ctx context.Context, remote, kind, name string, version int) (*registry.Plan, error) {
	p, err := s.reg.DeleteBy(kind, name, version, registry.Caller{Name: caller(ctx), Remote: remote})
	if err != nil {
		return nil, err
	}
	s.audit(ctx, remote, "delete", "kind", kind, "name", name, "version", version, "changes", p.String())
	for _, c := range p.Changes {
		if c.Kind != registry.KindView || c.Action != registry.ActionDelete {
			continue
		}
		vk := featurestore.ViewKey{ID: c.ViewID, Version: uint32(c.FromVersion)}
		if err := s.store.DropView(ctx, vk); err != nil {
			return p, fmt.Errorf("serving: drop state of view %s v%d (deleted from the registry; its state expires by TTL): %w", c.Name, c.FromVersion, err)
		}
	}
	return p, nil
}

// registryJSON is GET /v1/registry: every live definition, with every live
// version of every view.
type registryJSON struct {
	Generation      uint64                `json:"generation"`
	Entities        []registry.EntityDef  `json:"entities"`
	Sources         []registry.SourceDef  `json:"sources"`
	FeatureViews    []viewJSON            `json:"feature_views"`
	FeatureServices []registry.ServiceDef `json:"feature_services"`
}

// viewJSON is one view version: its definition plus what the registry
// assigned.
type viewJSON struct {
	registry.ViewDef
	Version int    `json:"version"`
	ID      uint32 `json:"id"`
	JoinKey string `json:"join_key"`
	// JoinKeys are a compound view's join keys, in key order (JoinKey is
	// the first); absent for a view of one entity.
	JoinKeys  []string  `json:"join_keys,omitempty"`
	Latest    bool      `json:"latest"`
	Detached  bool      `json:"detached,omitempty"`
	CreatedAt time.Time `json:"created_at"`
}

func (s *Server) handleRegistry(w http.ResponseWriter, r *http.Request) {
	if err := s.checkReady(); err != nil {
		s.writeError(w, r, err)
		return
	}
	snap := s.reg.Snapshot()
	defs := snap.Definitions()
	out := registryJSON{
		Generation:      snap.Generation(),
		Entities:        defs.Entities,
		Sources:         defs.Sources,
		FeatureServices: defs.FeatureServices,
	}
	views := snap.Views()
	out.FeatureViews = make([]viewJSON, len(views))
	for i, v := range views {
		latest, _ := snap.View(v.Name, 0)
		out.FeatureViews[i] = viewJSON{
			ViewDef: v.Definition(), Version: v.Version, ID: v.ID, JoinKey: v.Entities[0].JoinKey,
			Latest: latest == v, Detached: v.Detached, CreatedAt: v.CreatedAt.UTC(),
		}
		if len(v.Entities) > 1 {
			out.FeatureViews[i].JoinKeys = v.JoinKeys()
		}
	}
	if out.Entities == nil {
		out.Entities = []registry.EntityDef{}
	}
	if out.Sources == nil {
		out.Sources = []registry.SourceDef{}
	}
	if out.FeatureServices == nil {
		out.FeatureServices = []registry.ServiceDef{}
	}
	s.writeValue(w, r, http.StatusOK, out)
}

type registryService struct {
	featuredv1.UnimplementedRegistryServiceServer
	s *Server
}

var _ featuredv1.RegistryServiceServer = registryService{}

func changesToProto(p *registry.Plan) []*featuredv1.Change {
	out := make([]*featuredv1.Change, len(p.Changes))
	for i, c := range p.Changes {
		out[i] = &featuredv1.Change{Kind: c.Kind, Name: c.Name, Action: c.Action,
			FromVersion: int32(c.FromVersion), ToVersion: int32(c.ToVersion), Detail: c.Detail}
	}
	return out
}

func (g registryService) Apply(ctx context.Context, in *featuredv1.ApplyRequest) (_ *featuredv1.ApplyResponse, err error) {
	if err := g.s.checkReady(); err != nil {
		return nil, toGRPC(err)
	}
	if err := g.s.checkWritable(); err != nil {
		return nil, toGRPC(err)
	}
	defs, err := parseDefinitions(in.GetDefinitions(), in.GetFormat())
	if err != nil {
		return nil, toGRPC(err)
	}
	remote := grpcRemote(ctx)
	p, err := g.s.reg.ApplyBy(defs, registry.Caller{Name: caller(ctx), Remote: remote})
	if err != nil {
		return nil, toGRPC(err)
	}
	g.s.audit(ctx, remote, "apply", "generation", g.s.reg.Snapshot().Generation(), "changes", p.String())
	return &featuredv1.ApplyResponse{Changes: changesToProto(p), Text: p.String()}, nil
}

func (g registryService) Plan(_ context.Context, in *featuredv1.PlanRequest) (_ *featuredv1.PlanResponse, err error) {
	if err := g.s.checkReady(); err != nil {
		return nil, toGRPC(err)
	}
	defs, err := parseDefinitions(in.GetDefinitions(), in.GetFormat())
	if err != nil {
		return nil, toGRPC(err)
	}
	p, err := g.s.reg.Plan(defs)
	if err != nil {
		return nil, toGRPC(err)
	}
	return &featuredv1.PlanResponse{Changes: changesToProto(p), Text: p.String()}, nil
}

func (g registryService) Delete(ctx context.Context, in *featuredv1.DeleteRequest) (_ *featuredv1.DeleteResponse, err error) {
	if err := g.s.checkReady(); err != nil {
		return nil, toGRPC(err)
	}
	switch in.GetKind() {
	case kindView, kindSource, kindEntity, kindService:
	default:
		return nil, toGRPC(&RequestError{Problems: []Problem{{Field: "kind", Value: in.GetKind(), Reason: "want view, source, entity or service"}}})
	}
	if _, err := g.s.delete(ctx, grpcRemote(ctx), in.GetKind(), in.GetName(), int(in.GetVersion())); err != nil {
		return nil, toGRPC(err)
	}
	return &featuredv1.DeleteResponse{}, nil
}

func viewToProto(v *registry.View) *featuredv1.FeatureView {
	out := &featuredv1.FeatureView{
		Name: v.Name, Version: int32(v.Version), Id: v.ID, Entity: v.Entities[0].Name, JoinKey: v.Entities[0].JoinKey,
		Source: v.Source.Name, TtlMillis: v.TTL.Milliseconds(),
		Features: make([]*featuredv1.Feature, len(v.Features)),
		JoinKeys: v.JoinKeys(),
	}
	for _, e := range v.Entities {
		out.Entities = append(out.Entities, e.Name)
	}
	for i, f := range v.Features {
		out.Features[i] = &featuredv1.Feature{
			Name: f.Name, Aggregation: f.Aggregation, Field: f.Field,
			WindowMillis: f.Window.Milliseconds(), HopMillis: f.Hop.Milliseconds(), K: int32(f.K),
			Type: f.Spec.Op.ResultKind(f.Spec.FieldKind).String(),
		}
	}
	return out
}

func (g registryService) ListViews(context.Context, *featuredv1.ListViewsRequest) (_ *featuredv1.ListViewsResponse, err error) {
	if err := g.s.checkReady(); err != nil {
		return nil, toGRPC(err)
	}
	views := g.s.reg.Snapshot().Views()
	out := &featuredv1.ListViewsResponse{Views: make([]*featuredv1.FeatureView, len(views))}
	for i, v := range views {
		out.Views[i] = viewToProto(v)
	}
	return out, nil
}

func (g registryService) GetRegistry(context.Context, *featuredv1.GetRegistryRequest) (_ *featuredv1.GetRegistryResponse, err error) {
	if err := g.s.checkReady(); err != nil {
		return nil, toGRPC(err)
	}
	snap := g.s.reg.Snapshot()
	out := &featuredv1.GetRegistryResponse{}
	for _, e := range snap.Entities() {
		out.Entities = append(out.Entities, &featuredv1.Entity{Name: e.Name, JoinKey: e.JoinKey, Type: e.Type.String(), KafkaKey: e.KafkaKeyName()})
	}
	for _, src := range snap.Sources() {
		ps := &featuredv1.Source{Name: src.Name, Kind: src.Kind, Topic: src.Topic, Format: src.Format,
			EntityKey: src.EntityKey[0], EntityKeys: slices.Clone(src.EntityKey), EventTime: src.EventTime,
			Fields: make(map[string]string, len(src.Fields))}
		for _, f := range src.Fields {
			ps.Fields[f.Name] = f.Kind.String()
		}
		out.Sources = append(out.Sources, ps)
	}
	for _, v := range snap.Views() {
		out.Views = append(out.Views, viewToProto(v))
	}
	for _, svc := range snap.Services() {
		out.Services = append(out.Services, &featuredv1.FeatureService{Name: svc.Name, Features: append([]string(nil), svc.Features...)})
	}
	return out, nil
}

// historyJSON is GET /v1/registry/history.
type historyJSON struct {
	History []registry.HistoryEntry `json:"history"`
}

// handleHistory is GET /v1/registry/history: who applied and deleted what,
// oldest first (the last registry.MaxHistory changes).
func (s *Server) handleHistory(w http.ResponseWriter, r *http.Request) {
	if err := s.checkReady(); err != nil {
		s.writeError(w, r, err)
		return
	}
	out := historyJSON{History: s.reg.Snapshot().History()}
	if out.History == nil {
		out.History = []registry.HistoryEntry{}
	}
	s.writeValue(w, r, http.StatusOK, out)
}

// audited logs an offline route's run (export, backfill, verify-skew) as an
// audit line once it ends: its path and query (what was exported or
// rebuilt) and its error.
func (s *Server) audited(h func(http.ResponseWriter, *http.Request) error) func(http.ResponseWriter, *http.Request) error {
	return func(w http.ResponseWriter, r *http.Request) error {
		err := h(w, r)
		s.audit(r.Context(), r.RemoteAddr, strings.TrimPrefix(r.URL.Path, "/v1/"), "query", r.URL.RawQuery, "err", err)
		return err
	}
}
