package main

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"sigs.k8s.io/yaml"
)

// chartService is what the Dockerfile and skaffold checks need from the chart.
type chartService struct {
	Name        string
	Kind        string `json:"kind"`
	Port        int    `json:"port"`
	MetricsPort int    `json:"metricsPort"`
	Image       string `json:"image"`
}

type chartValues struct {
	Image struct {
		Registry string `json:"registry"`
	} `json:"image"`
	Services map[string]chartService `json:"services"`
}

// readChart reads deploy/helm/confab/values.yaml; services come back sorted.
func readChart(root string) (string, []chartService, error) {
	data, err := os.ReadFile(filepath.Join(root, "deploy/helm/confab/values.yaml"))
	if err != nil {
		return "", nil, err
	}
	var v chartValues
	if err := yaml.Unmarshal(data, &v); err != nil {
		return "", nil, fmt.Errorf("values.yaml: %w", err)
	}
	var out []chartService
	for name, s := range v.Services {
		s.Name = name
		if s.Image == "" {
			s.Image = name
		}
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return v.Image.Registry, out, nil
}

// serviceDirs lists services/* folders that hold a pyproject.toml.
func serviceDirs(root string) ([]string, error) {
	matches, err := filepath.Glob(filepath.Join(root, "services/*/pyproject.toml"))
	if err != nil {
		return nil, err
	}
	var names []string
	for _, m := range matches {
		names = append(names, filepath.Base(filepath.Dir(m)))
	}
	sort.Strings(names)
	return names, nil
}
