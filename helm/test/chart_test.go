package helmtest

import (
	"cmp"
	"encoding/json"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"
)

// nonrootUID is distroless's nonroot user, which the Dockerfile runs as and
// the chart pins.
const nonrootUID = 65532

// variantChecks holds what each rendering must show beyond the checks every
// rendering passes (checkCommon). A variant under helm/featured/ci without an
// entry fails TestChart: each documented variant states what it adds.
var variantChecks = map[string]func(t *testing.T, m *manifests, r *rendering){
	"default":     checkDefault,
	"kafka":       checkKafka,
	"definitions": checkDefinitions,
	"monitoring":  checkMonitoring,
	"backup":      checkBackup,
	"ephemeral":   checkEphemeral,
	"auth-tls":    checkAuthTLS,
	"cluster":     checkCluster,
}

// rendering is the server's pod as the chart renders it, with its command
// line parsed.
type rendering struct {
	sts       *appsv1.StatefulSet
	pod       *corev1.PodSpec
	container *corev1.Container
	flags     map[string]string // --name=value, by name
	args      []string
}

func TestChart(t *testing.T) {
	for name, data := range renderedVariants(t) {
		t.Run(name, func(t *testing.T) {
			m, err := decodeRendered(data)
			if err != nil {
				t.Fatalf("decode %s: %v", name, err)
			}
			r := checkCommon(t, m)
			check, ok := variantChecks[name]
			if !ok {
				t.Fatalf("variant %s has no entry in variantChecks: say what it adds", name)
			}
			check(t, m, r)
		})
	}
}

// checkCommon asserts what every rendering must hold, whatever the values.
func checkCommon(t *testing.T, m *manifests) *rendering {
	t.Helper()
	if len(m.statefulSets) != 1 {
		t.Fatalf("%d StatefulSets, want 1", len(m.statefulSets))
	}
	sts := m.statefulSets[0]
	pod := &sts.Spec.Template.Spec
	r := &rendering{sts: sts, pod: pod}
	for i := range pod.Containers {
		if pod.Containers[i].Name == "featured" {
			r.container = &pod.Containers[i]
		}
	}
	if r.container == nil {
		t.Fatalf("no container named featured in %s", sts.Name)
	}
	c := r.container
	r.args = c.Args
	r.flags = parseFlags(t, c.Args)

	podLabels := labels.Set(sts.Spec.Template.Labels)
	sel, err := metav1LabelSelector(sts)
	if err != nil {
		t.Fatal(err)
	}
	if !sel.Matches(podLabels) {
		t.Errorf("StatefulSet selector %v does not match its pod labels %v", sel, podLabels)
	}

	// The command line: listen on every interface (featured's own default is
	// loopback) on the ports the container declares, data dir on the volume.
	if len(c.Args) == 0 || c.Args[0] != "serve" {
		t.Errorf("args %q: want the serve command first", c.Args)
	}
	ports := map[string]int32{}
	for _, p := range c.Ports {
		ports[p.Name] = p.ContainerPort
	}
	for _, p := range []string{"http", "grpc"} {
		if ports[p] == 0 {
			t.Fatalf("container has no port named %s: %v", p, c.Ports)
		}
		if want := fmt.Sprintf("0.0.0.0:%d", ports[p]); r.flags[p+"-addr"] != want {
			t.Errorf("--%s-addr=%q, want %q", p, r.flags[p+"-addr"], want)
		}
	}
	if r.flags["partitions"] == "" {
		t.Errorf("--partitions is not passed: the store's partition count must be the Kafka topics', fixed for the life of a data dir")
	}
	dataMount := mountOf(c, "data")
	if dataMount == nil {
		t.Fatalf("volume data is not mounted: %v", c.VolumeMounts)
	}
	if dd := r.flags["data-dir"]; !strings.HasPrefix(path.Clean(dd)+"/", path.Clean(dataMount.MountPath)+"/") {
		t.Errorf("--data-dir=%q is not on the data volume mounted at %s", dd, dataMount.MountPath)
	}

	// Every mount has a volume, from the pod or a claim template.
	volumes := map[string]*corev1.Volume{}
	for i := range pod.Volumes {
		volumes[pod.Volumes[i].Name] = &pod.Volumes[i]
	}
	claims := map[string]bool{}
	for _, vct := range sts.Spec.VolumeClaimTemplates {
		claims[vct.Name] = true
	}
	for _, vm := range c.VolumeMounts {
		if volumes[vm.Name] == nil && !claims[vm.Name] {
			t.Errorf("mount %s (%s) has no volume", vm.Name, vm.MountPath)
		}
		if volumes[vm.Name] != nil && claims[vm.Name] {
			t.Errorf("volume %s is both a pod volume and a claim template", vm.Name)
		}
	}
	// The root file system is read-only: /tmp (export spills) is an emptyDir.
	tmp := mountOf(c, "tmp")
	if tmp == nil || tmp.MountPath != "/tmp" || volumes["tmp"] == nil || volumes["tmp"].EmptyDir == nil {
		t.Errorf("/tmp is not an emptyDir mount: mount %v, volume %v", tmp, volumes["tmp"])
	}
	wantScheme := checkSecurity(t, m, r, volumes)

	// Probes, on the named HTTP port.
	probes := []struct {
		name  string
		probe *corev1.Probe
		paths []string
	}{
		{"startup", c.StartupProbe, []string{"/healthz", "/livez"}},
		{"readiness", c.ReadinessProbe, []string{"/readyz"}},
		{"liveness", c.LivenessProbe, []string{"/healthz", "/livez"}},
	}
	for _, p := range probes {
		if p.probe == nil || p.probe.HTTPGet == nil {
			t.Errorf("%s probe: none, or not an HTTP GET", p.name)
			continue
		}
		if !contains(p.paths, p.probe.HTTPGet.Path) {
			t.Errorf("%s probe path %q, want one of %v", p.name, p.probe.HTTPGet.Path, p.paths)
		}
		if p.probe.HTTPGet.Port != intstr.FromString("http") {
			t.Errorf("%s probe port %v, want the named port http", p.name, p.probe.HTTPGet.Port)
		}
		// The probe paths are open without a token, but a TLS listener
		// answers a plain HTTP probe with 400, which would never pass.
		if got := cmp.Or(p.probe.HTTPGet.Scheme, corev1.URISchemeHTTP); got != wantScheme {
			t.Errorf("%s probe scheme %s, want %s", p.name, got, wantScheme)
		}
	}
	// Startup gets longer than liveness: featured listens only after its store
	// opened (WAL replay) and the definitions were applied.
	if c.StartupProbe != nil && c.LivenessProbe != nil {
		startup := c.StartupProbe.PeriodSeconds * c.StartupProbe.FailureThreshold
		liveness := c.LivenessProbe.PeriodSeconds * c.LivenessProbe.FailureThreshold
		if startup <= liveness {
			t.Errorf("startup probe allows %ds, liveness %ds: a slow open would be killed", startup, liveness)
		}
	}

	// Non-root, fixed uid, read-only root, no privileges.
	psc, csc := pod.SecurityContext, c.SecurityContext
	if psc == nil || csc == nil {
		t.Fatalf("security context missing: pod %v, container %v", psc, csc)
	}
	if psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot {
		t.Errorf("pod runAsNonRoot is not true")
	}
	if psc.RunAsUser == nil || *psc.RunAsUser != nonrootUID {
		t.Errorf("pod runAsUser %v, want %d", psc.RunAsUser, nonrootUID)
	}
	if psc.FSGroup == nil || *psc.FSGroup != nonrootUID {
		t.Errorf("pod fsGroup %v, want %d (the volume must be writable by the uid)", psc.FSGroup, nonrootUID)
	}
	if csc.ReadOnlyRootFilesystem == nil || !*csc.ReadOnlyRootFilesystem {
		t.Errorf("container readOnlyRootFilesystem is not true")
	}
	if csc.AllowPrivilegeEscalation == nil || *csc.AllowPrivilegeEscalation {
		t.Errorf("container allowPrivilegeEscalation is not false")
	}
	if csc.Capabilities == nil || !contains(capNames(csc.Capabilities.Drop), "ALL") {
		t.Errorf("container capabilities do not drop ALL: %v", csc.Capabilities)
	}

	// Graceful termination outlasts the preStop sleep plus the shutdown
	// timeout, after which the final commit still has to run.
	shutdown, err := time.ParseDuration(r.flags["shutdown-timeout"])
	if err != nil {
		t.Fatalf("--shutdown-timeout=%q: %v", r.flags["shutdown-timeout"], err)
	}
	var preStop time.Duration
	if c.Lifecycle != nil && c.Lifecycle.PreStop != nil && c.Lifecycle.PreStop.Sleep != nil {
		preStop = time.Duration(c.Lifecycle.PreStop.Sleep.Seconds) * time.Second
	}
	if pod.TerminationGracePeriodSeconds == nil {
		t.Fatalf("terminationGracePeriodSeconds unset (Kubernetes' 30s would equal the shutdown timeout)")
	}
	grace := time.Duration(*pod.TerminationGracePeriodSeconds) * time.Second
	if grace <= preStop+shutdown {
		t.Errorf("terminationGracePeriodSeconds %v <= preStop %v + --shutdown-timeout %v", grace, preStop, shutdown)
	}

	if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() {
		t.Errorf("container requests no cpu or memory: %v", c.Resources.Requests)
	}

	// Services: the StatefulSet's headless Service, and client Services for
	// HTTP and gRPC, all selecting the pods by named port.
	headless := m.services[sts.Spec.ServiceName]
	if headless == nil || headless.Spec.ClusterIP != corev1.ClusterIPNone {
		t.Errorf("serviceName %q is not a rendered headless Service", sts.Spec.ServiceName)
	}
	client := map[string]int{}
	for _, svc := range m.services {
		if !labels.SelectorFromSet(svc.Spec.Selector).Matches(podLabels) || len(svc.Spec.Selector) == 0 {
			t.Errorf("Service %s selector %v does not select the pods %v", svc.Name, svc.Spec.Selector, podLabels)
		}
		for _, p := range svc.Spec.Ports {
			if p.TargetPort.Type != intstr.String || ports[p.TargetPort.StrVal] == 0 {
				t.Errorf("Service %s port %s targets %v, not a named container port", svc.Name, p.Name, p.TargetPort)
			}
			if svc.Spec.ClusterIP != corev1.ClusterIPNone {
				client[p.TargetPort.StrVal]++
			}
		}
	}
	if client["http"] != 1 || client["grpc"] != 1 {
		t.Errorf("client Services' target ports %v, want one for http and one for grpc", client)
	}

	for _, pdb := range m.pdbs {
		s, err := labels.ValidatedSelectorFromSet(pdb.Spec.Selector.MatchLabels)
		if err != nil || !s.Matches(podLabels) || len(pdb.Spec.Selector.MatchExpressions) != 0 {
			t.Errorf("PodDisruptionBudget %s selector %v does not select the pods", pdb.Name, pdb.Spec.Selector)
		}
		if (pdb.Spec.MaxUnavailable == nil) == (pdb.Spec.MinAvailable == nil) {
			t.Errorf("PodDisruptionBudget %s: want exactly one of maxUnavailable, minAvailable", pdb.Name)
		}
	}

	if sa := pod.ServiceAccountName; sa != "" && len(m.serviceAccounts) > 0 && m.serviceAccounts[sa] == nil {
		t.Errorf("serviceAccountName %s is not the rendered ServiceAccount", sa)
	}
	// Definitions: --apply reads a file mounted from a ConfigMap that holds it.
	if apply, ok := r.flags["apply"]; ok {
		vm := mountUnder(c, apply)
		if vm == nil || volumes[vm.Name] == nil || volumes[vm.Name].ConfigMap == nil {
			t.Fatalf("--apply=%s is not on a ConfigMap volume", apply)
		}
		if rel := strings.TrimPrefix(apply, strings.TrimSuffix(vm.MountPath, "/")+"/"); !hasItem(volumes[vm.Name].ConfigMap, rel) {
			t.Errorf("--apply=%s: the ConfigMap volume does not project %s", apply, rel)
		}
	}
	return r
}

// checkSecurity asserts the no-open-door rule and where the security flags'
// files come from, and returns the scheme the probes must use.
func checkSecurity(t *testing.T, m *manifests, r *rendering, volumes map[string]*corev1.Volume) corev1.URIScheme {
	t.Helper()
	// featured refuses 0.0.0.0 without a token file unless --insecure.
	_, authOn := r.flags["auth-file"]
	if !authOn && r.flags["insecure"] != "true" {
		t.Errorf("neither --auth-file nor --insecure=true: featured refuses a non-loopback address without one")
	}
	if r.flags["metrics-token-required"] == "true" && !authOn {
		t.Errorf("--metrics-token-required without --auth-file: there is no token to require")
	}
	_, tlsOn := r.flags["tls-cert"]
	if _, key := r.flags["tls-key"]; key != tlsOn {
		t.Errorf("--tls-cert and --tls-key go together: %q", r.args)
	}
	if _, ca := r.flags["tls-client-ca"]; ca && !tlsOn {
		t.Errorf("--tls-client-ca without --tls-cert: featured refuses it")
	}
	// Each file is on a read-only Secret volume mounted whole: the kubelet
	// never updates a subPath mount, so rotation would need a restart.
	for _, f := range []string{"auth-file", "tls-cert", "tls-key", "tls-client-ca"} {
		file, ok := r.flags[f]
		if !ok {
			continue
		}
		vm := mountUnder(r.container, file)
		if vm == nil || volumes[vm.Name] == nil || volumes[vm.Name].Secret == nil {
			t.Errorf("--%s=%s is not on a Secret volume", f, file)
			continue
		}
		if !vm.ReadOnly || vm.SubPath != "" {
			t.Errorf("--%s: mount %s readOnly %v subPath %q, want read-only and whole", f, vm.Name, vm.ReadOnly, vm.SubPath)
		}
		sec := volumes[vm.Name].Secret
		if rel := strings.TrimPrefix(file, strings.TrimSuffix(vm.MountPath, "/")+"/"); !secretHasItem(sec, rel) {
			t.Errorf("--%s=%s: Secret volume %s does not project %s", f, file, vm.Name, rel)
		}
		if sec.DefaultMode == nil || *sec.DefaultMode&0o007 != 0 {
			t.Errorf("--%s: Secret volume %s defaultMode %v lets others read it", f, vm.Name, sec.DefaultMode)
		}
	}
	// Prometheus must speak the listener's scheme and, when /metrics
	// needs a token, send one.
	metricsToken := r.flags["metrics-token-required"] == "true"
	for _, sm := range m.serviceMonitors {
		for _, ep := range sm.Spec.Endpoints {
			if tlsOn != (ep.Scheme == "https") {
				t.Errorf("ServiceMonitor %s scheme %q with TLS %v", sm.Name, ep.Scheme, tlsOn)
			}
			if tlsOn && (ep.TLSConfig == nil || !ep.TLSConfig.InsecureSkipVerify &&
				(ep.TLSConfig.CA == nil || ep.TLSConfig.CA.Secret == nil || ep.TLSConfig.CA.Secret.Name == "")) {
				t.Errorf("ServiceMonitor %s scrapes TLS with no CA and no insecureSkipVerify: %+v", sm.Name, ep.TLSConfig)
			}
			a := ep.Authorization
			if metricsToken != (a != nil) {
				t.Errorf("ServiceMonitor %s authorization %+v with --metrics-token-required %v", sm.Name, a, metricsToken)
			}
			if a != nil && (a.Type != "Bearer" || a.Credentials == nil || a.Credentials.Name == "" || a.Credentials.Key == "") {
				t.Errorf("ServiceMonitor %s authorization %+v, want a Bearer token from a Secret key", sm.Name, a)
			}
		}
	}
	if tlsOn {
		return corev1.URISchemeHTTPS
	}
	return corev1.URISchemeHTTP
}

func checkDefault(t *testing.T, m *manifests, r *rendering) {
	if v := secretVolume(r.pod, "auth"); v == nil || v.SecretName != "featured-auth" || r.flags["auth-file"] == "" {
		t.Errorf("auth volume %v, --auth-file=%q: want the token file from Secret featured-auth", v, r.flags["auth-file"])
	}
	for _, f := range []string{"kafka-brokers", "apply", "backup-dest", "backup-interval", "insecure", "tls-cert", "metrics-token-required"} {
		if v, ok := r.flags[f]; ok {
			t.Errorf("default values pass --%s=%s", f, v)
		}
	}
	if len(m.serviceMonitors) != 0 || len(m.configMaps) != 0 {
		t.Errorf("default values render %d ServiceMonitors and %d ConfigMaps, want none", len(m.serviceMonitors), len(m.configMaps))
	}
	if len(m.pdbs) != 1 {
		t.Errorf("%d PodDisruptionBudgets, want 1", len(m.pdbs))
	}
	if *r.sts.Spec.Replicas != 1 {
		t.Errorf("replicas %d, want 1 (pods hold independent stores)", *r.sts.Spec.Replicas)
	}
	vcts := r.sts.Spec.VolumeClaimTemplates
	if len(vcts) != 1 || vcts[0].Name != "data" {
		t.Fatalf("volumeClaimTemplates %v, want one named data", vcts)
	}
	if got := vcts[0].Spec.Resources.Requests[corev1.ResourceStorage]; got.Cmp(resource.MustParse("1Gi")) < 0 {
		t.Errorf("data claim requests %v", got.String())
	}
	if !contains(accessModes(vcts[0].Spec.AccessModes), string(corev1.ReadWriteOnce)) {
		t.Errorf("data claim access modes %v", vcts[0].Spec.AccessModes)
	}
	if sa := r.pod.ServiceAccountName; m.serviceAccounts[sa] == nil {
		t.Errorf("serviceAccountName %q is not rendered", sa)
	}
	if r.pod.AutomountServiceAccountToken == nil || *r.pod.AutomountServiceAccountToken {
		t.Errorf("the pod mounts an API token; featured calls no Kubernetes API")
	}
	if env := envVar(r.container, "GOMEMLIMIT"); env == nil || env.ValueFrom == nil || env.ValueFrom.ResourceFieldRef == nil ||
		env.ValueFrom.ResourceFieldRef.Resource != "limits.memory" {
		t.Errorf("GOMEMLIMIT %v, want the memory limit through the downward API", env)
	}
	if want := ":" + chartMeta(t).AppVersion; !strings.HasSuffix(r.container.Image, want) {
		t.Errorf("image %q, want the tag of the chart's appVersion (%s)", r.container.Image, want)
	}
}

func checkKafka(t *testing.T, m *manifests, r *rendering) {
	if got := r.flags["kafka-brokers"]; len(strings.Split(got, ",")) != 3 {
		t.Errorf("--kafka-brokers=%q, want the three brokers", got)
	}
	if *r.sts.Spec.Replicas != 3 {
		t.Errorf("replicas %d, want 3", *r.sts.Spec.Replicas)
	}
	for _, e := range []struct{ env, key string }{
		{"FEATURED_KAFKA_SASL_USERNAME", "username"},
		{"FEATURED_KAFKA_SASL_PASSWORD", "password"},
	} {
		v := envVar(r.container, e.env)
		if v == nil || v.ValueFrom == nil || v.ValueFrom.SecretKeyRef == nil ||
			v.ValueFrom.SecretKeyRef.Name != "featured-kafka-sasl" || v.ValueFrom.SecretKeyRef.Key != e.key {
			t.Errorf("%s = %v, want secret featured-kafka-sasl key %s", e.env, v, e.key)
		}
	}
	tls := mountOf(r.container, "kafka-tls")
	if tls == nil || !tls.ReadOnly {
		t.Fatalf("kafka-tls not mounted read-only: %v", tls)
	}
	for _, env := range []string{"FEATURED_KAFKA_TLS_CA_FILE", "FEATURED_KAFKA_TLS_CERT_FILE", "FEATURED_KAFKA_TLS_KEY_FILE"} {
		if v := envVar(r.container, env); v == nil || !strings.HasPrefix(v.Value, tls.MountPath+"/") {
			t.Errorf("%s = %v, want a file under %s", env, v, tls.MountPath)
		}
	}
	for _, v := range r.pod.Volumes {
		if v.Name == "kafka-tls" && (v.Secret == nil || v.Secret.SecretName != "featured-kafka-tls") {
			t.Errorf("kafka-tls volume %v, want secret featured-kafka-tls", v)
		}
	}
	// flags: a map rendered in name order; large numbers stay integers.
	want := map[string]string{"log-format": "json", "cache-mb": "1024", "max-body-bytes": "8388608", "writer-cache": "512MiB"}
	for k, v := range want {
		if r.flags[k] != v {
			t.Errorf("--%s=%q, want %q", k, r.flags[k], v)
		}
	}
	if last := r.args[len(r.args)-1]; last != "--pprof-on-http=false" {
		t.Errorf("last arg %q, want extraArgs last", last)
	}
	if len(r.pod.TopologySpreadConstraints) != 1 {
		t.Errorf("topologySpreadConstraints %v", r.pod.TopologySpreadConstraints)
	}
}

func checkDefinitions(t *testing.T, m *manifests, r *rendering) {
	apply := r.flags["apply"]
	if apply == "" {
		t.Fatal("no --apply")
	}
	var cm *corev1.ConfigMap
	for _, v := range r.pod.Volumes {
		if v.ConfigMap != nil {
			cm = m.configMaps[v.ConfigMap.Name]
		}
	}
	if cm == nil {
		t.Fatalf("the definitions volume's ConfigMap is not rendered (have %d ConfigMaps)", len(m.configMaps))
	}
	text, ok := cm.Data[path.Base(apply)]
	if !ok {
		t.Fatalf("ConfigMap %s has no key %s", cm.Name, path.Base(apply))
	}
	var defs struct {
		Entities        []map[string]any `json:"entities"`
		Sources         []map[string]any `json:"sources"`
		FeatureViews    []map[string]any `json:"feature_views"`
		FeatureServices []map[string]any `json:"feature_services"`
	}
	if err := yaml.UnmarshalStrict([]byte(text), &defs); err != nil {
		t.Fatalf("definitions in ConfigMap %s: %v", cm.Name, err)
	}
	if len(defs.Entities) == 0 || len(defs.FeatureViews) == 0 {
		t.Errorf("definitions lost their content through the template: %q", text)
	}
	if r.sts.Spec.Template.Annotations["checksum/definitions"] == "" {
		t.Errorf("no checksum/definitions annotation: a changed file would not roll the pods")
	}
}

func checkMonitoring(t *testing.T, m *manifests, r *rendering) {
	if len(m.serviceMonitors) != 1 {
		t.Fatalf("%d ServiceMonitors, want 1", len(m.serviceMonitors))
	}
	sm := m.serviceMonitors[0]
	if len(sm.Spec.Endpoints) != 1 || sm.Spec.Endpoints[0].Port != "http" || sm.Spec.Endpoints[0].Path != "/metrics" {
		t.Errorf("ServiceMonitor endpoints %+v, want port http path /metrics", sm.Spec.Endpoints)
	}
	for _, ep := range sm.Spec.Endpoints {
		if ep.Scheme != "" || ep.TLSConfig != nil || ep.Authorization != nil {
			t.Errorf("ServiceMonitor endpoint %+v: want plain HTTP and no token (metrics open, no TLS)", ep)
		}
	}
	if sm.Labels["release"] != "kube-prometheus-stack" {
		t.Errorf("ServiceMonitor labels %v lack serviceMonitor.labels", sm.Labels)
	}
	// One Service only, or every pod would be scraped twice.
	sel := labels.SelectorFromSet(sm.Spec.Selector.MatchLabels)
	var selected []string
	for name, svc := range m.services {
		if sel.Matches(labels.Set(svc.Labels)) {
			selected = append(selected, name)
			if !hasPort(svc, "http") {
				t.Errorf("Service %s selected by the ServiceMonitor has no port http", name)
			}
		}
	}
	if len(selected) != 1 {
		t.Errorf("ServiceMonitor selects Services %v, want exactly one", selected)
	}

	var dash *corev1.ConfigMap
	for _, cm := range m.configMaps {
		if cm.Labels["grafana_dashboard"] == "1" {
			dash = cm
		}
	}
	if dash == nil {
		t.Fatalf("no ConfigMap labelled grafana_dashboard=1")
	}
	if len(dash.Data) == 0 {
		t.Fatalf("dashboard ConfigMap %s is empty", dash.Name)
	}
	for name, text := range dash.Data {
		var d struct {
			Title  string `json:"title"`
			UID    string `json:"uid"`
			Panels []struct {
				Type    string `json:"type"`
				Targets []struct {
					Expr string `json:"expr"`
				} `json:"targets"`
			} `json:"panels"`
		}
		if err := json.Unmarshal([]byte(text), &d); err != nil {
			t.Fatalf("dashboard %s: %v", name, err)
		}
		var exprs []string
		for _, p := range d.Panels {
			for _, tg := range p.Targets {
				exprs = append(exprs, tg.Expr)
			}
		}
		all := strings.Join(exprs, "\n")
		for _, metric := range []string{"http_server_request_duration_seconds_bucket", "http_server_request_duration_seconds_count", "featured_"} {
			if !strings.Contains(all, metric) {
				t.Errorf("dashboard %s has no panel over %s", name, metric)
			}
		}
		if d.Title == "" || d.UID == "" {
			t.Errorf("dashboard %s: title %q uid %q", name, d.Title, d.UID)
		}
	}
}

func checkBackup(t *testing.T, m *manifests, r *rendering) {
	if got := r.flags["backup-dest"]; got != "s3://featured-backups/prod" {
		t.Errorf("--backup-dest=%q", got)
	}
	if d, err := time.ParseDuration(r.flags["backup-interval"]); err != nil || d != time.Hour {
		t.Errorf("--backup-interval=%q (%v), want 1h", r.flags["backup-interval"], err)
	}
	found := false
	for _, ef := range r.container.EnvFrom {
		if ef.SecretRef != nil && ef.SecretRef.Name == "featured-backup-s3" {
			found = true
		}
	}
	if !found {
		t.Errorf("envFrom %v lacks the backup secret", r.container.EnvFrom)
	}
}

func checkEphemeral(t *testing.T, m *manifests, r *rendering) {
	if len(r.sts.Spec.VolumeClaimTemplates) != 0 {
		t.Errorf("persistence off, yet %d claim templates", len(r.sts.Spec.VolumeClaimTemplates))
	}
	var data *corev1.Volume
	for i := range r.pod.Volumes {
		if r.pod.Volumes[i].Name == "data" {
			data = &r.pod.Volumes[i]
		}
	}
	if data == nil || data.EmptyDir == nil {
		t.Errorf("data volume %v, want an emptyDir", data)
	}
	if len(m.pdbs) != 0 || len(m.serviceAccounts) != 0 {
		t.Errorf("%d PDBs and %d ServiceAccounts, want none", len(m.pdbs), len(m.serviceAccounts))
	}
	if r.pod.ServiceAccountName != "ci-runner" {
		t.Errorf("serviceAccountName %q, want ci-runner", r.pod.ServiceAccountName)
	}
	if !strings.Contains(r.container.Image, "@sha256:") {
		t.Errorf("image %q not pinned by digest", r.container.Image)
	}
	if r.container.Lifecycle != nil {
		t.Errorf("preStopSleepSeconds 0 still renders lifecycle %v", r.container.Lifecycle)
	}
	if v := envVar(r.container, "GOMEMLIMIT"); v == nil || v.Value != "900MiB" {
		t.Errorf("GOMEMLIMIT %v, want 900MiB", v)
	}
	if v := envVar(r.container, "FEATURED_LOG_LEVEL"); v == nil || v.Value != "debug" {
		t.Errorf("extraEnv FEATURED_LOG_LEVEL %v", v)
	}
	if r.flags["insecure"] != "true" {
		t.Errorf("--insecure=%q, want true", r.flags["insecure"])
	}
	if v, ok := r.flags["auth-file"]; ok || secretVolume(r.pod, "auth") != nil {
		t.Errorf("insecure: true without auth.existingSecret still passes --auth-file=%q or mounts a token file", v)
	}
}

func checkAuthTLS(t *testing.T, m *manifests, r *rendering) {
	for _, v := range []struct{ volume, secret, flag string }{
		{"auth", "featured-auth", "auth-file"},
		{"tls", "featured-tls", "tls-cert"},
		{"tls", "featured-tls", "tls-key"},
		{"client-ca", "featured-client-ca", "tls-client-ca"},
	} {
		sv, vm := secretVolume(r.pod, v.volume), mountOf(r.container, v.volume)
		if sv == nil || sv.SecretName != v.secret || vm == nil || !strings.HasPrefix(r.flags[v.flag], vm.MountPath+"/") {
			t.Errorf("--%s=%q: want a file of Secret %s (volume %v, mount %v)", v.flag, r.flags[v.flag], v.secret, sv, vm)
		}
	}
	if path.Base(r.flags["tls-cert"]) != "tls.crt" || path.Base(r.flags["tls-key"]) != "tls.key" {
		t.Errorf("--tls-cert=%s --tls-key=%s, want the kubernetes.io/tls keys tls.crt and tls.key", r.flags["tls-cert"], r.flags["tls-key"])
	}
	if r.flags["metrics-token-required"] != "true" {
		t.Errorf("--metrics-token-required=%q, want true", r.flags["metrics-token-required"])
	}
	if _, ok := r.flags["insecure"]; ok {
		t.Errorf("--insecure passed with auth on")
	}
	if len(m.serviceMonitors) != 1 || len(m.serviceMonitors[0].Spec.Endpoints) != 1 {
		t.Fatalf("want one ServiceMonitor with one endpoint, have %d", len(m.serviceMonitors))
	}
	ep := m.serviceMonitors[0].Spec.Endpoints[0]
	if a := ep.Authorization; a == nil || a.Credentials == nil || a.Credentials.Name != "featured-prometheus-token" || a.Credentials.Key != "token" {
		t.Errorf("ServiceMonitor authorization %+v, want Secret featured-prometheus-token key token", a)
	}
	tc := ep.TLSConfig
	if tc == nil || tc.InsecureSkipVerify || tc.CA == nil || tc.CA.Secret == nil ||
		tc.CA.Secret.Name != "featured-tls-ca" || tc.CA.Secret.Key != "ca.crt" || tc.ServerName != "featured-headless.features.svc" {
		t.Errorf("ServiceMonitor tlsConfig %+v, want CA featured-tls-ca/ca.crt and serverName featured-headless.features.svc", tc)
	}
}

// parseFlags reads --name=value arguments after the command; a flag given
// twice is an error (the later one would silently win).
func parseFlags(t *testing.T, args []string) map[string]string {
	t.Helper()
	flags := map[string]string{}
	for _, a := range args[min(1, len(args)):] {
		name, value, ok := strings.Cut(strings.TrimPrefix(a, "--"), "=")
		if !strings.HasPrefix(a, "--") || !ok {
			t.Errorf("argument %q is not --name=value", a)
			continue
		}
		if _, dup := flags[name]; dup {
			t.Errorf("--%s given twice: %q", name, args)
		}
		flags[name] = value
	}
	return flags
}

func metav1LabelSelector(sts *appsv1.StatefulSet) (labels.Selector, error) {
	if sts.Spec.Selector == nil || len(sts.Spec.Selector.MatchLabels) == 0 {
		return nil, fmt.Errorf("StatefulSet %s has no matchLabels selector", sts.Name)
	}
	return labels.SelectorFromSet(sts.Spec.Selector.MatchLabels), nil
}

func mountOf(c *corev1.Container, volume string) *corev1.VolumeMount {
	for i := range c.VolumeMounts {
		if c.VolumeMounts[i].Name == volume {
			return &c.VolumeMounts[i]
		}
	}
	return nil
}

// mountUnder returns the mount whose path holds file.
func mountUnder(c *corev1.Container, file string) *corev1.VolumeMount {
	for i := range c.VolumeMounts {
		if strings.HasPrefix(file, strings.TrimSuffix(c.VolumeMounts[i].MountPath, "/")+"/") {
			return &c.VolumeMounts[i]
		}
	}
	return nil
}

func hasItem(cm *corev1.ConfigMapVolumeSource, rel string) bool {
	if len(cm.Items) == 0 {
		return true // every key is projected under its own name
	}
	for _, it := range cm.Items {
		if it.Path == rel {
			return true
		}
	}
	return false
}

func secretHasItem(s *corev1.SecretVolumeSource, rel string) bool {
	if len(s.Items) == 0 {
		return true // every key is projected under its own name
	}
	for _, it := range s.Items {
		if it.Path == rel {
			return true
		}
	}
	return false
}

func secretVolume(pod *corev1.PodSpec, name string) *corev1.SecretVolumeSource {
	if v := podVolume(pod, name); v != nil {
		return v.Secret
	}
	return nil
}

func envVar(c *corev1.Container, name string) *corev1.EnvVar {
	for i := range c.Env {
		if c.Env[i].Name == name {
			return &c.Env[i]
		}
	}
	return nil
}

func hasPort(svc *corev1.Service, name string) bool {
	for _, p := range svc.Spec.Ports {
		if p.Name == name {
			return true
		}
	}
	return false
}

func capNames(caps []corev1.Capability) []string {
	out := make([]string, len(caps))
	for i, c := range caps {
		out[i] = string(c)
	}
	return out
}

func accessModes(modes []corev1.PersistentVolumeAccessMode) []string {
	out := make([]string, len(modes))
	for i, m := range modes {
		out[i] = string(m)
	}
	return out
}

func contains(list []string, s string) bool { return slices.Contains(list, s) }

type chart struct {
	Version    string `json:"version"`
	AppVersion string `json:"appVersion"`
}

func chartMeta(t *testing.T) chart {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "featured", "Chart.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var c chart
	if err := yaml.Unmarshal(data, &c); err != nil || c.AppVersion == "" {
		t.Fatalf("Chart.yaml: appVersion %q, %v", c.AppVersion, err)
	}
	return c
}

// checkCluster: cluster mode passes the group, the pod name as the static
// member id and its headless-Service address as the advertised one (from
// the downward API), the replica settings, and spreads the pods.
func checkCluster(t *testing.T, m *manifests, r *rendering) {
	want := map[string]string{
		"cluster-group":           r.sts.Name,
		"cluster-instance":        "$(POD_NAME)",
		"cluster-advertise":       fmt.Sprintf("$(POD_NAME).%s-headless.features.svc:9090", r.sts.Name), // scripts/helm.sh renders in namespace features
		"standbys":                "1",
		"max-staleness":           "5s",
		"cluster-forward-timeout": "250ms",
		"cluster-session-timeout": "10s",
		"partitions":              "16",
		"checkpoint-dest":         "s3://featured-checkpoints/prod?endpoint=https://s3.example.internal&region=us-east-1",
		"checkpoint-interval":     "5m",
		"checkpoint-keep":         "4",
	}
	for k, v := range want {
		if r.flags[k] != v {
			t.Errorf("--%s=%q, want %q", k, r.flags[k], v)
		}
	}
	if r.flags["kafka-brokers"] == "" {
		t.Errorf("cluster mode without --kafka-brokers")
	}
	found := false
	for _, e := range r.container.EnvFrom {
		found = found || (e.SecretRef != nil && e.SecretRef.Name == "featured-s3")
	}
	if !found {
		t.Errorf("envFrom %v: want the checkpoint store's Secret featured-s3", r.container.EnvFrom)
	}
	v := envVar(r.container, "POD_NAME")
	if v == nil || v.ValueFrom == nil || v.ValueFrom.FieldRef == nil || v.ValueFrom.FieldRef.FieldPath != "metadata.name" {
		t.Errorf("POD_NAME = %v, want the downward API's metadata.name", v)
	}
	if *r.sts.Spec.Replicas != 4 {
		t.Errorf("replicas %d, want 4", *r.sts.Spec.Replicas)
	}
	if r.sts.Spec.ServiceName != r.sts.Name+"-headless" {
		t.Errorf("serviceName %q: the advertised addresses are on the headless Service", r.sts.Spec.ServiceName)
	}
	aff := r.pod.Affinity
	if aff == nil || aff.PodAntiAffinity == nil || len(aff.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution) != 2 {
		t.Fatalf("affinity %v: want soft anti-affinity on hostname and zone", aff)
	}
	keys := []string{}
	for _, w := range aff.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution {
		keys = append(keys, w.PodAffinityTerm.TopologyKey)
	}
	if !slices.Equal(keys, []string{"kubernetes.io/hostname", "topology.kubernetes.io/zone"}) {
		t.Errorf("anti-affinity topology keys %v", keys)
	}
	if len(m.pdbs) != 1 || m.pdbs[0].Spec.MaxUnavailable == nil || m.pdbs[0].Spec.MaxUnavailable.IntValue() != 1 {
		t.Errorf("PodDisruptionBudget %v: a rolling restart or drain must take one pod at a time", m.pdbs)
	}
}
