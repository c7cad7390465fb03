package main

// deploylint skaffold: skaffold itself cannot be built here, so skaffold.yaml is
// decoded strictly into the subset of skaffold's v4beta schema that Confab uses
// (an unknown or misspelt field is an error) and cross-checked with the repo:
// one artifact per service, each built from deploy/Dockerfile with buildArgs
// SERVICE set to the service, image names equal to the chart's, paths present,
// profiles helm and kustomize, image values for every artifact.

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"sigs.k8s.io/yaml"
)

type skArtifact struct {
	Image   string `json:"image"`
	Context string `json:"context"`
	Docker  *struct {
		Dockerfile string            `json:"dockerfile"`
		BuildArgs  map[string]string `json:"buildArgs,omitempty"`
		Target     string            `json:"target,omitempty"`
	} `json:"docker"`
}

type skHelmRelease struct {
	Name              string            `json:"name"`
	ChartPath         string            `json:"chartPath"`
	Namespace         string            `json:"namespace,omitempty"`
	ValuesFiles       []string          `json:"valuesFiles,omitempty"`
	SetValues         map[string]string `json:"setValues,omitempty"`
	SetValueTemplates map[string]string `json:"setValueTemplates,omitempty"`
}

type skManifests struct {
	RawYaml   []string `json:"rawYaml,omitempty"`
	Kustomize *struct {
		Paths []string `json:"paths"`
	} `json:"kustomize,omitempty"`
	Helm *struct {
		Releases []skHelmRelease `json:"releases"`
	} `json:"helm,omitempty"`
}

type skDeploy struct {
	Kubectl *struct {
		DefaultNamespace string   `json:"defaultNamespace,omitempty"`
		Flags            any      `json:"flags,omitempty"`
		Hooks            any      `json:"hooks,omitempty"`
		RemoteManifests  []string `json:"remoteManifests,omitempty"`
	} `json:"kubectl,omitempty"`
	Helm *struct {
		Releases []skHelmRelease `json:"releases"`
	} `json:"helm,omitempty"`
	StatusCheckDeadlineSeconds int `json:"statusCheckDeadlineSeconds,omitempty"`
}

type skConfig struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name string `json:"name"`
	} `json:"metadata"`
	Build struct {
		TagPolicy map[string]any `json:"tagPolicy,omitempty"`
		Local     *struct {
			Push        *bool `json:"push,omitempty"`
			UseBuildkit *bool `json:"useBuildkit,omitempty"`
			Concurrency *int  `json:"concurrency,omitempty"`
		} `json:"local,omitempty"`
		Artifacts []skArtifact `json:"artifacts"`
	} `json:"build"`
	Manifests   *skManifests `json:"manifests,omitempty"`
	Deploy      *skDeploy    `json:"deploy,omitempty"`
	PortForward []struct {
		ResourceType string `json:"resourceType"`
		ResourceName string `json:"resourceName"`
		Namespace    string `json:"namespace,omitempty"`
		Port         int    `json:"port"`
		LocalPort    int    `json:"localPort,omitempty"`
	} `json:"portForward,omitempty"`
	Profiles []struct {
		Name      string       `json:"name"`
		Manifests *skManifests `json:"manifests,omitempty"`
		Deploy    *skDeploy    `json:"deploy,omitempty"`
	} `json:"profiles"`
}

var nonWord = regexp.MustCompile(`[^A-Za-z0-9]`)

func runSkaffold(args []string) int {
	fs := flag.NewFlagSet("skaffold", flag.ExitOnError)
	root := fs.String("root", ".", "repository root")
	_ = fs.Parse(args)
	var errs []string
	fail := func(format string, a ...any) { errs = append(errs, fmt.Sprintf(format, a...)) }
	exists := func(rel string) bool {
		_, err := os.Stat(filepath.Join(*root, rel))
		return err == nil
	}

	data, err := os.ReadFile(filepath.Join(*root, "skaffold.yaml"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "deploylint skaffold:", err)
		return 1
	}
	var cfg skConfig
	if err := yaml.UnmarshalStrict(data, &cfg); err != nil {
		fail("skaffold.yaml: %v", err)
	}
	if !strings.HasPrefix(cfg.APIVersion, "skaffold/v4beta") || cfg.Kind != "Config" {
		fail("skaffold.yaml: want apiVersion skaffold/v4beta* and kind Config, got %s %s", cfg.APIVersion, cfg.Kind)
	}
	registry, services, err := readChart(*root)
	if err != nil {
		fail("%v", err)
	}
	dirs, err := serviceDirs(*root)
	if err != nil {
		fail("%v", err)
	}

	byImage := map[string]skArtifact{}
	for _, a := range cfg.Build.Artifacts {
		if _, dup := byImage[a.Image]; dup {
			fail("artifact %s is listed twice", a.Image)
		}
		byImage[a.Image] = a
		if a.Context != "." {
			fail("artifact %s: context must be . (the uv workspace root), got %q", a.Image, a.Context)
		}
		if a.Docker == nil || a.Docker.Dockerfile == "" {
			fail("artifact %s: no docker.dockerfile", a.Image)
		} else if !exists(a.Docker.Dockerfile) {
			fail("artifact %s: %s does not exist", a.Image, a.Docker.Dockerfile)
		}
	}
	chartImages := map[string]bool{}
	for _, s := range services {
		image := registry + "/" + s.Image
		chartImages[image] = true
		a, ok := byImage[image]
		if !ok {
			fail("service %s: no artifact named %s (the chart's image)", s.Name, image)
			continue
		}
		if a.Docker != nil && a.Docker.Dockerfile != dockerfilePath {
			fail("artifact %s: dockerfile should be %s", image, dockerfilePath)
		}
		if a.Docker != nil && a.Docker.BuildArgs["SERVICE"] != s.Name {
			fail("artifact %s: docker.buildArgs.SERVICE should be %q, got %q", image, s.Name, a.Docker.BuildArgs["SERVICE"])
		}
	}
	for image := range byImage {
		if !chartImages[image] {
			fail("artifact %s is not an image of the chart", image)
		}
	}
	inChart := map[string]bool{}
	for _, s := range services {
		inChart[s.Name] = true
	}
	for _, d := range dirs {
		if !inChart[d] {
			fail("services/%s is not in deploy/helm/confab/values.yaml services", d)
		}
	}

	checkManifests := func(where string, m *skManifests, d *skDeploy) {
		if m != nil && m.Kustomize != nil {
			for _, p := range m.Kustomize.Paths {
				if !exists(filepath.Join(p, "kustomization.yaml")) {
					fail("%s: kustomize path %s has no kustomization.yaml", where, p)
				}
			}
		}
		var releases []skHelmRelease
		if m != nil && m.Helm != nil {
			releases = append(releases, m.Helm.Releases...)
		}
		if d != nil && d.Helm != nil {
			releases = append(releases, d.Helm.Releases...)
		}
		for _, r := range releases {
			if !exists(filepath.Join(r.ChartPath, "Chart.yaml")) {
				fail("%s: helm release %s: %s has no Chart.yaml", where, r.Name, r.ChartPath)
			}
			for _, f := range r.ValuesFiles {
				if !exists(f) {
					fail("%s: helm release %s: values file %s does not exist", where, r.Name, f)
				}
			}
			for _, s := range services {
				image := registry + "/" + s.Image
				key := "services." + s.Name + ".imageRef"
				want := "{{.IMAGE_FULLY_QUALIFIED_" + nonWord.ReplaceAllString(image, "_") + "}}"
				if got := r.SetValueTemplates[key]; got != want {
					fail("%s: helm release %s: setValueTemplates[%s] = %q, want %q", where, r.Name, key, got, want)
				}
			}
		}
	}
	checkManifests("skaffold.yaml", cfg.Manifests, cfg.Deploy)
	profiles := map[string]bool{}
	for _, p := range cfg.Profiles {
		profiles[p.Name] = true
		checkManifests("profile "+p.Name, p.Manifests, p.Deploy)
	}
	for _, want := range []string{"helm", "kustomize"} {
		if !profiles[want] {
			fail("skaffold.yaml: no %q profile", want)
		}
	}

	for _, e := range errs {
		fmt.Fprintln(os.Stderr, "ERROR", e)
	}
	fmt.Printf("deploylint skaffold: %d artifacts, %d profiles, %d errors\n", len(cfg.Build.Artifacts), len(cfg.Profiles), len(errs))
	if len(errs) > 0 {
		return 1
	}
	return 0
}
