package main

// deploylint dockerfile: Confab's image conventions, checked on deploy/Dockerfile,
// the one image recipe every service is built from with --build-arg SERVICE=<name>
// (no Dockerfile linter can be installed here; see docs/deploy.md): multi-stage;
// pinned base images; ARG SERVICE without a default, declared again in the final
// stage; uv sync --frozen --no-dev --package "${SERVICE}"; bytecode compiled at
// build and never written at run time; a numeric non-root USER 10001 in the final
// stage; CONFAB_SERVICE=${SERVICE} and the ENTRYPOINT that runs it; COPY sources
// that exist for every service of the chart; no ADD; and no service named in the
// file, so that adding one never needs an edit here.

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// dockerfilePath is the one Dockerfile, relative to the repository root.
const dockerfilePath = "deploy/Dockerfile"

// entrypoint is the final stage's ENTRYPOINT: exec form cannot expand a build
// argument, so a shell reads CONFAB_SERVICE and exec's Python (PID 1 stays Python).
var entrypoint = []string{"/bin/sh", "-c", `exec python -m "$CONFAB_SERVICE" "$@"`, "confab"}

type instruction struct {
	line int
	cmd  string
	args string
}

func parseDockerfile(path string) ([]instruction, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []instruction
	var cur strings.Builder
	start := 0
	sc := bufio.NewScanner(f)
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if cur.Len() == 0 && (line == "" || strings.HasPrefix(line, "#")) {
			continue
		}
		if cur.Len() > 0 && strings.HasPrefix(line, "#") {
			continue
		}
		if cur.Len() == 0 {
			start = n
		}
		if strings.HasSuffix(line, "\\") {
			cur.WriteString(strings.TrimSuffix(line, "\\") + " ")
			continue
		}
		cur.WriteString(line)
		full := cur.String()
		cur.Reset()
		cmd, args, _ := strings.Cut(full, " ")
		out = append(out, instruction{start, strings.ToUpper(cmd), strings.TrimSpace(args)})
	}
	return out, sc.Err()
}

func runDockerfiles(args []string) int {
	fs := flag.NewFlagSet("dockerfile", flag.ExitOnError)
	root := fs.String("root", ".", "repository root")
	_ = fs.Parse(args)
	var errs []string
	_, services, err := readChart(*root)
	if err != nil {
		errs = append(errs, err.Error())
	}
	dirs, err := serviceDirs(*root)
	if err != nil {
		errs = append(errs, err.Error())
	}
	inChart := map[string]bool{}
	for _, s := range services {
		inChart[s.Name] = true
	}
	for _, name := range dirs {
		if !inChart[name] {
			errs = append(errs, fmt.Sprintf("services/%s is not in deploy/helm/confab/values.yaml services", name))
		}
	}
	var names []string
	for _, s := range services {
		names = append(names, s.Name)
	}
	ins, err := parseDockerfile(filepath.Join(*root, dockerfilePath))
	if err != nil {
		errs = append(errs, err.Error())
	} else {
		for _, e := range checkDockerfile(*root, names, ins) {
			errs = append(errs, dockerfilePath+": "+e)
		}
	}
	for _, e := range errs {
		fmt.Fprintln(os.Stderr, "ERROR", e)
	}
	fmt.Printf("deploylint dockerfile: %s for %d services, %d errors\n", dockerfilePath, len(names), len(errs))
	if len(errs) > 0 {
		return 1
	}
	return 0
}

// expandService replaces ${SERVICE} and $SERVICE in s.
func expandService(s, service string) string {
	return strings.NewReplacer("${SERVICE}", service, "$SERVICE", service).Replace(s)
}

func checkDockerfile(root string, services []string, ins []instruction) []string {
	var errs []string
	fail := func(i instruction, format string, a ...any) {
		errs = append(errs, fmt.Sprintf("line %d: %s", i.line, fmt.Sprintf(format, a...)))
	}
	args := map[string]string{}
	stages := 0
	var final []instruction
	sawSync, sawCompile, builderArg := false, false, false
	for _, i := range ins {
		switch i.cmd {
		case "ARG":
			k, v, hasDefault := strings.Cut(i.args, "=")
			args[k] = v
			if k == "SERVICE" {
				if hasDefault {
					fail(i, "ARG SERVICE must have no default: an image must name its service")
				}
				if stages > 0 {
					builderArg = true
				}
			}
		case "FROM":
			stages++
			final = nil
			image := strings.Fields(i.args)[0]
			if strings.HasPrefix(image, "${") {
				image = args[strings.Trim(image, "${}")]
			}
			if image == "" || (!strings.Contains(image, ":") && !strings.Contains(image, "@")) && !isStage(ins, image) {
				fail(i, "base image %q has no pinned tag", image)
			}
			if strings.HasSuffix(image, ":latest") {
				fail(i, "base image %q uses :latest", image)
			}
		case "ADD":
			fail(i, "use COPY, not ADD")
		case "COPY":
			if !strings.Contains(i.args, "--from=") {
				f := strings.Fields(i.args)
				for _, src := range f[:len(f)-1] {
					if strings.HasPrefix(src, "--") {
						continue
					}
					for _, name := range services {
						if _, err := os.Stat(filepath.Join(root, expandService(src, name))); err != nil {
							fail(i, "COPY source %s does not exist for service %s", src, name)
						}
					}
				}
			}
		case "RUN":
			if strings.Contains(i.args, "uv sync") {
				if !strings.Contains(i.args, "--frozen") || !strings.Contains(i.args, "--no-dev") ||
					!strings.Contains(i.args, `--package "${SERVICE}"`) {
					fail(i, `uv sync must use --frozen --no-dev --package "${SERVICE}"`)
				}
				sawSync = true
			}
		case "ENV":
			if strings.Contains(i.args, "UV_COMPILE_BYTECODE=1") {
				sawCompile = true
			}
		}
		final = append(final, i)
	}
	if stages < 2 {
		errs = append(errs, "not a multi-stage build")
	}
	if !builderArg {
		errs = append(errs, "no ARG SERVICE inside the build stages")
	}
	if !sawSync {
		errs = append(errs, "no uv sync")
	}
	if !sawCompile {
		errs = append(errs, "bytecode is not compiled at build (ENV UV_COMPILE_BYTECODE=1)")
	}
	var user, entry string
	dontWrite, serviceEnv, finalArg := false, false, false
	for _, i := range final {
		switch i.cmd {
		case "ARG":
			if k, _, _ := strings.Cut(i.args, "="); k == "SERVICE" {
				finalArg = true
			}
		case "USER":
			user = i.args
		case "ENTRYPOINT":
			entry = i.args
		case "EXPOSE":
			errs = append(errs, fmt.Sprintf("line %d: EXPOSE: ports belong to the chart (values.yaml), not the image", i.line))
		case "ENV":
			if strings.Contains(i.args, "PYTHONDONTWRITEBYTECODE=1") {
				dontWrite = true
			}
			for _, kv := range strings.Fields(i.args) {
				if kv == "CONFAB_SERVICE=${SERVICE}" {
					serviceEnv = true
				}
			}
		}
	}
	if !finalArg {
		errs = append(errs, "final stage does not declare ARG SERVICE again (a stage sees no ARG from before its FROM)")
	}
	if !serviceEnv {
		errs = append(errs, "final stage lacks ENV CONFAB_SERVICE=${SERVICE}, which the ENTRYPOINT runs")
	}
	if u, _, _ := strings.Cut(user, ":"); u != "10001" {
		errs = append(errs, fmt.Sprintf("final stage must run as USER 10001, got %q", user))
	}
	var ep []string
	if err := json.Unmarshal([]byte(entry), &ep); err != nil || strings.Join(ep, "\x00") != strings.Join(entrypoint, "\x00") {
		want, _ := json.Marshal(entrypoint)
		errs = append(errs, fmt.Sprintf("ENTRYPOINT must be %s, got %s", want, entry))
	}
	if !dontWrite {
		errs = append(errs, "final stage lacks ENV PYTHONDONTWRITEBYTECODE=1")
	}
	for _, name := range services {
		word := regexp.MustCompile(`(^|[^A-Za-z0-9_-])` + regexp.QuoteMeta(name) + `($|[^A-Za-z0-9_-])`)
		for _, i := range ins {
			if word.MatchString(i.args) {
				fail(i, "names the service %q: the Dockerfile must take it from ARG SERVICE only", name)
			}
		}
	}
	return errs
}

func isStage(ins []instruction, name string) bool {
	for _, i := range ins {
		if i.cmd == "FROM" && strings.HasSuffix(strings.ToLower(i.args), " as "+strings.ToLower(name)) {
			return true
		}
	}
	return false
}
