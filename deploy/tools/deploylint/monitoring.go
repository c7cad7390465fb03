package main

// deploylint monitoring: what kubeconform cannot check in the rendered manifests.
//
//   - ServiceMonitor and PrometheusRule are decoded strictly (unknown or duplicate
//     fields are errors) into prometheus-operator's own API types, the types its
//     CRDs are generated from.
//   - PrometheusRule groups go through Prometheus' rule-file validation (the one
//     promtool uses): PromQL, durations, label names and annotation templates;
//     every alert needs a runbook_url.
//   - Grafana dashboards (ConfigMaps labelled grafana_dashboard) must be JSON and
//     every query must parse as PromQL.
//   - Every confab_* metric a rule or a dashboard reads must be one the services
//     define (-metrics file, one name a line), and every ServiceMonitor must
//     select a Service of the same input that has the port it scrapes.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"regexp"
	"sort"
	"strings"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

type service struct {
	file   string
	labels map[string]string
	ports  map[string]bool
}

type checker struct {
	known    map[string]bool
	promql   parser.Parser
	errs     []string
	services []service
	monitors []struct {
		where    string
		selector metav1.LabelSelector
		ports    []string
	}
	nMonitors, nRules, nRuleGroups, nDashboards, nQueries int
	used                                                  map[string]bool
	alerts                                                map[string][]string // alert -> runbook URLs
}

func (c *checker) fail(format string, args ...any) {
	c.errs = append(c.errs, fmt.Sprintf(format, args...))
}

// Grafana variables become values PromQL accepts.
var grafanaVars = []struct{ re, to string }{
	{`\$__rate_interval|\$\{__rate_interval\}`, "5m"},
	{`\$__interval|\$\{__interval\}`, "1m"},
	{`\$__range|\$\{__range\}`, "1h"},
	{`\$\{?[A-Za-z_][A-Za-z0-9_]*(:[a-z]+)?\}?`, "x"},
}

func degrafana(expr string) string {
	for _, v := range grafanaVars {
		expr = regexp.MustCompile(v.re).ReplaceAllString(expr, v.to)
	}
	return expr
}

func (c *checker) metricsOf(where, expr string) {
	e, err := c.promql.ParseExpr(expr)
	if err != nil {
		c.fail("%s: PromQL: %v\n    %s", where, err, expr)
		return
	}
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		vs, ok := n.(*parser.VectorSelector)
		if !ok || vs.Name == "" {
			return nil
		}
		c.used[vs.Name] = true
		if !strings.HasPrefix(vs.Name, "confab_") || c.known == nil {
			return nil
		}
		base := vs.Name
		for _, suffix := range []string{"_bucket", "_count", "_sum"} {
			if c.known[base] {
				break
			}
			base = strings.TrimSuffix(base, suffix)
		}
		if !c.known[base] {
			c.fail("%s: metric %s is not defined by any service (see docs/metrics.md)", where, vs.Name)
		}
		return nil
	})
}

func (c *checker) doc(where string, raw []byte) {
	var meta struct {
		metav1.TypeMeta `json:",inline"`
		Metadata        metav1.ObjectMeta `json:"metadata"`
	}
	if err := yaml.Unmarshal(raw, &meta); err != nil {
		c.fail("%s: %v", where, err)
		return
	}
	where = fmt.Sprintf("%s: %s/%s", where, meta.Kind, meta.Metadata.Name)
	switch meta.Kind {
	case "Service":
		var s corev1.Service
		if err := yaml.Unmarshal(raw, &s); err != nil {
			c.fail("%s: %v", where, err)
			return
		}
		ports := map[string]bool{}
		for _, p := range s.Spec.Ports {
			ports[p.Name] = true
		}
		c.services = append(c.services, service{where, s.Labels, ports})
	case "ServiceMonitor":
		var sm monitoringv1.ServiceMonitor
		if err := yaml.UnmarshalStrict(raw, &sm); err != nil {
			c.fail("%s: %v", where, err)
			return
		}
		c.nMonitors++
		if len(sm.Spec.Endpoints) == 0 {
			c.fail("%s: no endpoints", where)
		}
		var ports []string
		for _, ep := range sm.Spec.Endpoints {
			if ep.Port == "" {
				c.fail("%s: an endpoint has no named port", where)
				continue
			}
			ports = append(ports, ep.Port)
		}
		c.monitors = append(c.monitors, struct {
			where    string
			selector metav1.LabelSelector
			ports    []string
		}{where, sm.Spec.Selector, ports})
	case "PrometheusRule":
		var pr monitoringv1.PrometheusRule
		if err := yaml.UnmarshalStrict(raw, &pr); err != nil {
			c.fail("%s: %v", where, err)
			return
		}
		groups, err := yaml.Marshal(map[string]any{"groups": pr.Spec.Groups})
		if err != nil {
			c.fail("%s: %v", where, err)
			return
		}
		logger := slog.New(slog.NewTextHandler(io.Discard, nil))
		_, errs := rulefmt.Parse(groups, false, model.UTF8Validation, c.promql, logger)
		for _, e := range errs {
			c.fail("%s: %v", where, e)
		}
		for _, g := range pr.Spec.Groups {
			c.nRuleGroups++
			for _, r := range g.Rules {
				c.nRules++
				name := r.Alert
				if name == "" {
					name = r.Record
				}
				if r.Alert != "" {
					if r.Annotations["runbook_url"] == "" {
						c.fail("%s: alert %s has no runbook_url annotation", where, name)
					}
					c.alerts[r.Alert] = append(c.alerts[r.Alert], r.Annotations["runbook_url"])
				}
				c.metricsOf(fmt.Sprintf("%s: rule %s", where, name), r.Expr.String())
			}
		}
	case "ConfigMap":
		var cm corev1.ConfigMap
		if err := yaml.Unmarshal(raw, &cm); err != nil {
			c.fail("%s: %v", where, err)
			return
		}
		if _, ok := cm.Labels["grafana_dashboard"]; !ok {
			return
		}
		keys := make([]string, 0, len(cm.Data))
		for k := range cm.Data {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			c.dashboard(fmt.Sprintf("%s: %s", where, k), cm.Data[k])
		}
	}
}

func (c *checker) dashboard(where, text string) {
	var dash map[string]any
	dec := json.NewDecoder(strings.NewReader(text))
	if err := dec.Decode(&dash); err != nil {
		c.fail("%s: not JSON: %v", where, err)
		return
	}
	c.nDashboards++
	if t, _ := dash["title"].(string); t == "" {
		c.fail("%s: dashboard has no title", where)
	}
	if u, _ := dash["uid"].(string); u == "" {
		c.fail("%s: dashboard has no uid", where)
	}
	var walk func(path string, v any)
	walk = func(path string, v any) {
		switch x := v.(type) {
		case map[string]any:
			if targets, ok := x["targets"].([]any); ok {
				title, _ := x["title"].(string)
				for i, t := range targets {
					tm, _ := t.(map[string]any)
					expr, _ := tm["expr"].(string)
					if expr == "" {
						c.fail("%s: panel %q target %d has no expr", where, title, i)
						continue
					}
					c.nQueries++
					c.metricsOf(fmt.Sprintf("%s: panel %q", where, title), degrafana(expr))
				}
			}
			for k, child := range x {
				walk(path+"."+k, child)
			}
		case []any:
			for i, child := range x {
				walk(fmt.Sprintf("%s[%d]", path, i), child)
			}
		}
	}
	walk("", dash)
}

func (c *checker) crossCheck() {
	for _, m := range c.monitors {
		sel, err := metav1.LabelSelectorAsSelector(&m.selector)
		if err != nil || sel.Empty() {
			c.fail("%s: bad or empty selector: %v", m.where, err)
			continue
		}
		matched := false
		for _, s := range c.services {
			if !sel.Matches(labels.Set(s.labels)) {
				continue
			}
			matched = true
			for _, p := range m.ports {
				if !s.ports[p] {
					c.fail("%s: selects %s, which has no port named %q", m.where, s.file, p)
				}
			}
		}
		if !matched {
			c.fail("%s: selects no Service in the input", m.where)
		}
	}
}

func readKnown(path string) (map[string]bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	known := map[string]bool{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if name := strings.TrimSpace(sc.Text()); name != "" {
			known[name] = true
		}
	}
	return known, sc.Err()
}

func runMonitoring(args []string) int {
	fs := flag.NewFlagSet("monitoring", flag.ExitOnError)
	metricsFile := fs.String("metrics", "", "file of known metric names, one a line")
	runbookFile := fs.String("runbook", "", "markdown runbook that must have a '## <Alert>' section per alert")
	_ = fs.Parse(args)
	if fs.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "usage: deploylint monitoring [-metrics names.txt] manifest.yaml...")
		return 2
	}
	c := &checker{promql: parser.NewParser(parser.Options{}), used: map[string]bool{}, alerts: map[string][]string{}}
	if *metricsFile != "" {
		known, err := readKnown(*metricsFile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "deploylint monitoring:", err)
			return 2
		}
		c.known = known
	}
	for _, path := range fs.Args() {
		data, err := os.ReadFile(path)
		if err != nil {
			c.fail("%v", err)
			continue
		}
		r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
		for i := 0; ; i++ {
			raw, err := r.Read()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				c.fail("%s: %v", path, err)
				break
			}
			if len(bytes.TrimSpace(raw)) == 0 {
				continue
			}
			c.doc(fmt.Sprintf("%s#%d", path, i), raw)
		}
	}
	c.crossCheck()
	if *runbookFile != "" {
		text, err := os.ReadFile(*runbookFile)
		if err != nil {
			c.fail("%v", err)
		}
		sections := map[string]bool{}
		for _, line := range strings.Split(string(text), "\n") {
			if strings.HasPrefix(line, "## ") {
				sections[strings.TrimSpace(line[3:])] = true
			}
		}
		names := make([]string, 0, len(c.alerts))
		for a := range c.alerts {
			names = append(names, a)
		}
		sort.Strings(names)
		for _, a := range names {
			if !sections[a] {
				c.fail("alert %s has no '## %s' section in %s", a, a, *runbookFile)
			}
			want := "#" + strings.ToLower(a)
			for _, u := range c.alerts[a] {
				if !strings.HasSuffix(u, want) {
					c.fail("alert %s: runbook_url %s does not end in %s", a, u, want)
				}
			}
		}
	}
	for _, e := range c.errs {
		fmt.Fprintln(os.Stderr, "ERROR", e)
	}
	fmt.Printf("deploylint monitoring: %d ServiceMonitors, %d rule groups (%d rules, %d distinct alerts), %d dashboards (%d queries), %d metric names used, %d errors\n",
		c.nMonitors, c.nRuleGroups, c.nRules, len(c.alerts), c.nDashboards, c.nQueries, len(c.used), len(c.errs))
	if len(c.errs) > 0 {
		return 1
	}
	return 0
}
