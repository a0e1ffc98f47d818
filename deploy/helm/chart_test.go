// Package helmchart_test renders the jetbox chart with Helm's own engine
// and checks what a cluster would get. It is a module of its own: Helm and
// the Kubernetes libraries it brings cost minutes to build with -race, so
// 'make test' leaves it out and 'make helm-test' runs it.
package helmchart_test

import (
	"bytes"
	"strings"
	"testing"

	"helm.sh/helm/v4/pkg/chart/common"
	"helm.sh/helm/v4/pkg/chart/common/util"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	"helm.sh/helm/v4/pkg/engine"
	"sigs.k8s.io/yaml"
)

// object is one rendered Kubernetes object.
type object map[string]any

func (o object) kind() string { s, _ := o["kind"].(string); return s }

func (o object) name() string {
	md, _ := o["metadata"].(map[string]any)
	s, _ := md["name"].(string)
	return s
}

// get walks a path of map keys and list indexes (ints) through o.
func (o object) get(path ...any) any {
	var cur any = map[string]any(o)
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, ok := cur.(map[string]any)
			if !ok {
				return nil
			}
			cur = m[k]
		case int:
			l, ok := cur.([]any)
			if !ok || k >= len(l) {
				return nil
			}
			cur = l[k]
		}
	}
	return cur
}

// render renders the chart with values over its defaults, as
// 'helm template' would, and parses every document.
func render(t *testing.T, values map[string]any) ([]object, error) {
	t.Helper()
	chrt, err := loader.LoadDir("jetbox")
	if err != nil {
		t.Fatalf("load chart: %v", err)
	}
	vals, err := util.ToRenderValues(chrt, values, common.ReleaseOptions{Name: "memory", Namespace: "jetbox", IsInstall: true}, common.DefaultCapabilities)
	if err != nil {
		t.Fatalf("values: %v", err)
	}
	files, err := engine.Render(chrt, vals)
	if err != nil {
		return nil, err
	}
	var out []object
	for name, text := range files {
		for _, doc := range strings.Split(text, "\n---") {
			if strings.TrimSpace(doc) == "" {
				continue
			}
			var o object
			if err := yaml.Unmarshal([]byte(doc), &o); err != nil {
				t.Fatalf("%s does not parse as YAML: %v\n%s", name, err, doc)
			}
			if o == nil {
				continue // only comments
			}
			if o.kind() == "" || o.name() == "" {
				t.Fatalf("%s: an object without kind or name:\n%s", name, doc)
			}
			out = append(out, o)
		}
	}
	return out, nil
}

func mustRender(t *testing.T, values map[string]any) []object {
	t.Helper()
	objs, err := render(t, values)
	if err != nil {
		t.Fatalf("render: %v", err)
	}
	return objs
}

func find(objs []object, kind, name string) object {
	for _, o := range objs {
		if o.kind() == kind && o.name() == name {
			return o
		}
	}
	return nil
}

func kinds(objs []object) map[string]int {
	n := map[string]int{}
	for _, o := range objs {
		n[o.kind()]++
	}
	return n
}

// secretsOnlyByReference fails the test when a container's environment
// holds a secret as a literal value, or the chart renders a Secret.
func secretsOnlyByReference(t *testing.T, objs []object) {
	t.Helper()
	secretish := []string{"TOKEN", "PASSWORD", "DSN", "NATS_USER"}
	for _, o := range objs {
		if o.kind() == "Secret" {
			t.Errorf("the chart renders Secret %s: secrets must come from existing Secrets", o.name())
		}
		if o.kind() == "ConfigMap" {
			data, _ := o["data"].(map[string]any)
			for k := range data {
				for _, s := range secretish {
					if strings.Contains(k, s) {
						t.Errorf("ConfigMap %s holds %s", o.name(), k)
					}
				}
			}
		}
		containers, _ := o.get("spec", "template", "spec", "containers").([]any)
		for _, c := range containers {
			env, _ := c.(map[string]any)["env"].([]any)
			for _, e := range env {
				e := e.(map[string]any)
				name := e["name"].(string)
				for _, s := range secretish {
					if strings.Contains(name, s) {
						if _, literal := e["value"]; literal {
							t.Errorf("%s %s: %s has a literal value", o.kind(), o.name(), name)
						}
						if object(e).get("valueFrom", "secretKeyRef", "name") == nil {
							t.Errorf("%s %s: %s does not come from a Secret", o.kind(), o.name(), name)
						}
					}
				}
			}
		}
	}
}

func envValue(container map[string]any, name string) (string, bool) {
	env, _ := container["env"].([]any)
	for _, e := range env {
		e := e.(map[string]any)
		if e["name"] == name {
			v, ok := e["value"].(string)
			return v, ok
		}
	}
	return "", false
}

// The defaults: workers whose probes reach /healthz and /readyz on the
// port their ops listener binds, a PDB, the metrics Service, secrets only
// by reference, and no autoscaler.
func TestDefaultsRenderWorkersWithProbesPDBAndSecretReferences(t *testing.T) {
	objs := mustRender(t, nil)
	want := map[string]int{"ConfigMap": 1, "Deployment": 1, "PodDisruptionBudget": 1, "Service": 1}
	if got := kinds(objs); len(got) != len(want) || got["ConfigMap"] != 1 || got["Deployment"] != 1 || got["PodDisruptionBudget"] != 1 || got["Service"] != 1 {
		t.Errorf("objects %v, want %v", got, want)
	}
	d := find(objs, "Deployment", "memory-jetbox")
	if d == nil {
		t.Fatal("no worker Deployment memory-jetbox")
	}
	c := d.get("spec", "template", "spec", "containers", 0).(map[string]any)
	if args := object(c).get("args", 0); args != "run" {
		t.Errorf("worker args %v, want run", c["args"])
	}
	if listen, _ := envValue(c, "SOMABRAIN_OUTBOX_HTTP_LISTEN"); listen != "0.0.0.0:9464" {
		t.Errorf("SOMABRAIN_OUTBOX_HTTP_LISTEN = %q, want 0.0.0.0:9464", listen)
	}
	if p, _ := envValue(c, "SOMABRAIN_OUTBOX_PARTITIONS"); p != "24" {
		t.Errorf("SOMABRAIN_OUTBOX_PARTITIONS = %q, want 24", p)
	}
	if port := object(c).get("ports", 0); port == nil || port.(map[string]any)["name"] != "ops" || port.(map[string]any)["containerPort"] != float64(9464) {
		t.Errorf("ops port %v, want ops 9464", port)
	}
	for probe, path := range map[string]string{"livenessProbe": "/healthz", "readinessProbe": "/readyz", "startupProbe": "/healthz"} {
		if got := object(c).get(probe, "httpGet", "path"); got != path {
			t.Errorf("%s path %v, want %s", probe, got, path)
		}
		if got := object(c).get(probe, "httpGet", "port"); got != "ops" {
			t.Errorf("%s port %v, want ops", probe, got)
		}
	}
	if d.get("spec", "replicas") != float64(3) {
		t.Errorf("replicas %v, want 3", d.get("spec", "replicas"))
	}
	if object(c).get("resources", "requests", "cpu") == nil {
		t.Error("the worker has no resource requests")
	}
	pdb := find(objs, "PodDisruptionBudget", "memory-jetbox")
	if pdb == nil || pdb.get("spec", "maxUnavailable") != float64(1) {
		t.Errorf("PodDisruptionBudget %v, want maxUnavailable 1", pdb)
	}
	if sel, want := pdb.get("spec", "selector", "matchLabels"), d.get("spec", "selector", "matchLabels"); !equalYAML(t, sel, want) {
		t.Errorf("the PDB selects %v, the Deployment %v", sel, want)
	}
	secretsOnlyByReference(t, objs)
	if tok := find(objs, "Deployment", "memory-jetbox").get("spec", "template", "spec", "containers", 0); !strings.Contains(mustYAML(t, tok), "secretKeyRef") {
		t.Error("the memory API token is not taken from a Secret")
	}
}

// Autoscaling: a KEDA ScaledObject on the backlog gauge, bounded by the
// partition count; the Deployment leaves replicas to it.
func TestAutoscalingNeverAbovePartitions(t *testing.T) {
	objs := mustRender(t, map[string]any{"partitions": 12, "replicas": 2, "autoscaling": map[string]any{"enabled": true, "maxReplicas": 12}})
	so := find(objs, "ScaledObject", "memory-jetbox")
	if so == nil {
		t.Fatal("no ScaledObject")
	}
	if max := so.get("spec", "maxReplicaCount"); max != float64(12) {
		t.Errorf("maxReplicaCount %v, want 12", max)
	}
	if min := so.get("spec", "minReplicaCount"); min != float64(1) {
		t.Errorf("minReplicaCount %v, want 1", min)
	}
	if q, _ := so.get("spec", "triggers", 0, "metadata", "query").(string); !strings.Contains(q, "jetbox_outbox_pending_writes") {
		t.Errorf("the trigger's query %q does not read jetbox_outbox_pending_writes", q)
	}
	if so.get("spec", "scaleTargetRef", "name") != "memory-jetbox" {
		t.Errorf("scaleTargetRef %v", so.get("spec", "scaleTargetRef"))
	}
	if r := find(objs, "Deployment", "memory-jetbox").get("spec", "replicas"); r != nil {
		t.Errorf("the Deployment sets replicas %v while KEDA scales it", r)
	}

	for _, bad := range []map[string]any{
		{"partitions": 24, "autoscaling": map[string]any{"enabled": true, "maxReplicas": 32}},
		{"partitions": 8, "replicas": 9},
		{"autoscaling": map[string]any{"enabled": true, "minReplicas": 0}},
		{"config": map[string]any{"SOMABRAIN_MEMORY_HTTP_TOKEN": "s3cret"}},
	} {
		if _, err := render(t, bad); err == nil {
			t.Errorf("values %v rendered; want an error", bad)
		} else {
			t.Logf("values %v: %v", bad, err)
		}
	}
	if _, err := render(t, map[string]any{"partitions": 24, "autoscaling": map[string]any{"enabled": true, "maxReplicas": 32}}); err == nil || !strings.Contains(err.Error(), "partitions") {
		t.Errorf("maxReplicas above partitions: error %v, want one naming partitions", err)
	}
}

// Everything optional at once still parses, and every secret is a
// reference: the relay's DSN, the front door's token, the NATS
// credentials file.
func TestOptionalPartsRender(t *testing.T) {
	objs := mustRender(t, map[string]any{
		"relay":          map[string]any{"enabled": true},
		"frontDoor":      map[string]any{"enabled": true},
		"serviceMonitor": map[string]any{"enabled": true},
		"autoscaling":    map[string]any{"enabled": true},
		"secrets":        map[string]any{"natsCreds": map[string]any{"name": "jetbox-nats-creds"}, "natsPassword": map[string]any{"name": ""}},
	})
	for _, want := range [][2]string{
		{"Deployment", "memory-jetbox-relay"}, {"Service", "memory-jetbox-relay-metrics"},
		{"Service", "memory-jetbox-front-door"}, {"ServiceMonitor", "memory-jetbox"}, {"ScaledObject", "memory-jetbox"},
	} {
		if find(objs, want[0], want[1]) == nil {
			t.Errorf("no %s %s", want[0], want[1])
		}
	}
	secretsOnlyByReference(t, objs)
	relay := find(objs, "Deployment", "memory-jetbox-relay").get("spec", "template", "spec", "containers", 0).(map[string]any)
	if object(relay).get("args", 0) != "relay" {
		t.Errorf("relay args %v", relay["args"])
	}
	worker := find(objs, "Deployment", "memory-jetbox").get("spec", "template", "spec", "containers", 0).(map[string]any)
	if creds, _ := envValue(worker, "NATS_CREDS"); creds != "/etc/jetbox/nats/nats.creds" {
		t.Errorf("NATS_CREDS = %q", creds)
	}
	if _, set := envValue(worker, "NATS_PASSWORD"); set {
		t.Error("NATS_PASSWORD set although natsPassword.name is empty")
	}
	if !strings.Contains(mustYAML(t, find(objs, "Deployment", "memory-jetbox").get("spec", "template", "spec", "volumes")), "secretName: jetbox-nats-creds") {
		t.Error("the NATS credentials Secret is not mounted")
	}
}

func mustYAML(t *testing.T, v any) string {
	t.Helper()
	b, err := yaml.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func equalYAML(t *testing.T, a, b any) bool {
	return bytes.Equal([]byte(mustYAML(t, a)), []byte(mustYAML(t, b)))
}
