package helmtest

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// renderedEnv names the directory scripts/helm.sh rendered the chart into.
const renderedEnv = "FEATURED_HELM_RENDERED"

// serviceMonitor is the part of the Prometheus Operator's ServiceMonitor
// (monitoring.coreos.com/v1) the chart renders. Its Go types live in the
// operator's module, which would pull half of it in for one object; a field
// the chart renders and this type lacks fails the strict decode, so it cannot
// drift silently.
type serviceMonitor struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		Selector          metav1.LabelSelector `json:"selector"`
		NamespaceSelector struct {
			MatchNames []string `json:"matchNames"`
		} `json:"namespaceSelector"`
		Endpoints []struct {
			Port          string `json:"port"`
			Path          string `json:"path"`
			Interval      string `json:"interval"`
			ScrapeTimeout string `json:"scrapeTimeout"`
			Scheme        string `json:"scheme,omitempty"`
			TLSConfig     *struct {
				CA *struct {
					Secret *corev1.SecretKeySelector `json:"secret"`
				} `json:"ca,omitempty"`
				ServerName         string `json:"serverName,omitempty"`
				InsecureSkipVerify bool   `json:"insecureSkipVerify,omitempty"`
			} `json:"tlsConfig,omitempty"`
			Authorization *struct {
				Type        string                    `json:"type"`
				Credentials *corev1.SecretKeySelector `json:"credentials"`
			} `json:"authorization,omitempty"`
		} `json:"endpoints"`
	} `json:"spec"`
}

// manifests is one rendering of the chart, decoded.
type manifests struct {
	statefulSets    []*appsv1.StatefulSet
	services        map[string]*corev1.Service
	configMaps      map[string]*corev1.ConfigMap
	serviceAccounts map[string]*corev1.ServiceAccount
	pdbs            []*policyv1.PodDisruptionBudget
	serviceMonitors []*serviceMonitor
}

// decodeStrict decodes JSON into v as the API server does (sigs.k8s.io/json:
// field names match case-sensitively) and refuses fields v has no place for
// and keys given twice. encoding/json with DisallowUnknownFields would not
// do: it matches names case-insensitively, so clusterIp passes for clusterIP.
func decodeStrict(data []byte, v any) error {
	strict, err := kjson.UnmarshalStrict(data, v)
	if err != nil {
		return err
	}
	return errors.Join(strict...)
}

var docSeparator = regexp.MustCompile(`(?m)^---\s*$`)

// decodeRendered splits helm template's output into documents and decodes
// each into the type of its apiVersion and kind. A kind the chart is not
// meant to render is an error.
func decodeRendered(data []byte) (*manifests, error) {
	m := &manifests{
		services:        map[string]*corev1.Service{},
		configMaps:      map[string]*corev1.ConfigMap{},
		serviceAccounts: map[string]*corev1.ServiceAccount{},
	}
	for i, doc := range docSeparator.Split(string(data), -1) {
		if strings.TrimSpace(stripComments(doc)) == "" {
			continue
		}
		// Strict: a key given twice in one mapping is an error, not "last wins".
		js, err := yaml.YAMLToJSONStrict([]byte(doc))
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", i, err)
		}
		var tm metav1.TypeMeta
		if err := json.Unmarshal(js, &tm); err != nil {
			return nil, fmt.Errorf("document %d: %w", i, err)
		}
		var obj any
		switch tm.APIVersion + " " + tm.Kind {
		case "apps/v1 StatefulSet":
			obj = &appsv1.StatefulSet{}
		case "v1 Service":
			obj = &corev1.Service{}
		case "v1 ConfigMap":
			obj = &corev1.ConfigMap{}
		case "v1 ServiceAccount":
			obj = &corev1.ServiceAccount{}
		case "policy/v1 PodDisruptionBudget":
			obj = &policyv1.PodDisruptionBudget{}
		case "monitoring.coreos.com/v1 ServiceMonitor":
			obj = &serviceMonitor{}
		default:
			return nil, fmt.Errorf("document %d: unexpected %s %s", i, tm.APIVersion, tm.Kind)
		}
		if err := decodeStrict(js, obj); err != nil {
			return nil, fmt.Errorf("document %d (%s): %w", i, tm.Kind, err)
		}
		switch o := obj.(type) {
		case *appsv1.StatefulSet:
			m.statefulSets = append(m.statefulSets, o)
		case *corev1.Service:
			m.services[o.Name] = o
		case *corev1.ConfigMap:
			m.configMaps[o.Name] = o
		case *corev1.ServiceAccount:
			m.serviceAccounts[o.Name] = o
		case *policyv1.PodDisruptionBudget:
			m.pdbs = append(m.pdbs, o)
		case *serviceMonitor:
			m.serviceMonitors = append(m.serviceMonitors, o)
		}
	}
	return m, nil
}

func stripComments(doc string) string {
	var b strings.Builder
	for line := range strings.Lines(doc) {
		if !strings.HasPrefix(strings.TrimSpace(line), "#") {
			b.WriteString(line)
		}
	}
	return b.String()
}

// renderedVariants reads every rendering scripts/helm.sh wrote, by variant
// name (default, and one per helm/featured/ci/*.yaml), and fails unless the
// two sets agree: a variant added to ci/ must be rendered and checked.
func renderedVariants(t *testing.T) map[string][]byte {
	t.Helper()
	dir := os.Getenv(renderedEnv)
	if dir == "" {
		t.Fatalf("%s is unset: render the chart first: bash scripts/helm.sh DIR && %s=DIR go test ./...", renderedEnv, renderedEnv)
	}
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string][]byte{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		got[strings.TrimSuffix(filepath.Base(f), ".yaml")] = data
	}
	ci, err := filepath.Glob(filepath.Join("..", "featured", "ci", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"default"}
	for _, f := range ci {
		want = append(want, strings.TrimSuffix(filepath.Base(f), ".yaml"))
	}
	sort.Strings(want)
	var names []string
	for n := range got {
		names = append(names, n)
	}
	sort.Strings(names)
	if strings.Join(names, ",") != strings.Join(want, ",") {
		t.Fatalf("rendered variants in %s: %v; want default plus helm/featured/ci: %v", dir, names, want)
	}
	return got
}

func TestDecodeRefusesUnknownFields(t *testing.T) {
	// The guard the other tests rely on: a misspelled field must fail.
	doc := []byte("apiVersion: v1\nkind: Service\nmetadata:\n  name: x\nspec:\n  clusterIp: None\n")
	if _, err := decodeRendered(doc); err == nil || !strings.Contains(err.Error(), "clusterIp") {
		t.Fatalf("decode of a misspelled field: err %v, want an unknown field error naming clusterIp", err)
	}
	dup := []byte("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n  name: y\n")
	if _, err := decodeRendered(dup); err == nil {
		t.Fatal("decode of a duplicated key: no error")
	}
	other := []byte("apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: x\n")
	if _, err := decodeRendered(other); err == nil || !strings.Contains(err.Error(), "unexpected batch/v1 Job") {
		t.Fatalf("decode of a kind the chart does not render: err %v", err)
	}
}
