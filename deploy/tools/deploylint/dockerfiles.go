package main

// deploylint dockerfiles: Confab's image conventions, checked on every
// services/<name>/Dockerfile (no Dockerfile linter can be installed here; see
// docs/deploy.md): multi-stage; pinned base images; uv sync --frozen --no-dev
// --package <name>; bytecode compiled at build and never written at run time;
// a numeric non-root USER 10001 in the final stage; EXPOSE of the chart's ports;
// ENTRYPOINT ["python", "-m", "<name>"]; COPY sources that exist; no ADD.

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

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
	fs := flag.NewFlagSet("dockerfiles", flag.ExitOnError)
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
	inChart := map[string]chartService{}
	for _, s := range services {
		inChart[s.Name] = s
	}
	checked := 0
	for _, name := range dirs {
		s, ok := inChart[name]
		if !ok {
			errs = append(errs, fmt.Sprintf("services/%s is not in deploy/helm/confab/values.yaml services", name))
			continue
		}
		rel := filepath.Join("services", name, "Dockerfile")
		ins, err := parseDockerfile(filepath.Join(*root, rel))
		if err != nil {
			errs = append(errs, err.Error())
			continue
		}
		checked++
		for _, e := range checkDockerfile(*root, name, s, ins) {
			errs = append(errs, rel+": "+e)
		}
	}
	for _, e := range errs {
		fmt.Fprintln(os.Stderr, "ERROR", e)
	}
	fmt.Printf("deploylint dockerfiles: %d Dockerfiles, %d errors\n", checked, len(errs))
	if len(errs) > 0 {
		return 1
	}
	return 0
}

func checkDockerfile(root, name string, s chartService, ins []instruction) []string {
	var errs []string
	fail := func(i instruction, format string, a ...any) {
		errs = append(errs, fmt.Sprintf("line %d: %s", i.line, fmt.Sprintf(format, a...)))
	}
	args := map[string]string{}
	stages := 0
	var final []instruction
	sawSync, sawCompile := false, false
	for _, i := range ins {
		switch i.cmd {
		case "ARG":
			k, v, _ := strings.Cut(i.args, "=")
			args[k] = v
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
					if _, err := os.Stat(filepath.Join(root, src)); err != nil {
						fail(i, "COPY source %s does not exist", src)
					}
				}
			}
		case "RUN":
			if strings.Contains(i.args, "uv sync") {
				if !strings.Contains(i.args, "--frozen") || !strings.Contains(i.args, "--no-dev") ||
					!strings.Contains(i.args, "--package "+name) {
					fail(i, "uv sync must use --frozen --no-dev --package %s", name)
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
	if !sawSync {
		errs = append(errs, "no uv sync")
	}
	if !sawCompile {
		errs = append(errs, "bytecode is not compiled at build (ENV UV_COMPILE_BYTECODE=1)")
	}
	var user, entry string
	exposed := map[int]bool{}
	dontWrite := false
	for _, i := range final {
		switch i.cmd {
		case "USER":
			user = i.args
		case "ENTRYPOINT":
			entry = i.args
		case "EXPOSE":
			for _, p := range strings.Fields(i.args) {
				n, _ := strconv.Atoi(strings.TrimSuffix(p, "/tcp"))
				exposed[n] = true
			}
		case "ENV":
			if strings.Contains(i.args, "PYTHONDONTWRITEBYTECODE=1") {
				dontWrite = true
			}
		}
	}
	if u, _, _ := strings.Cut(user, ":"); u != "10001" {
		errs = append(errs, fmt.Sprintf("final stage must run as USER 10001, got %q", user))
	}
	var ep []string
	if err := json.Unmarshal([]byte(entry), &ep); err != nil ||
		strings.Join(ep, " ") != "python -m "+name {
		errs = append(errs, fmt.Sprintf(`ENTRYPOINT must be ["python", "-m", %q], got %s`, name, entry))
	}
	if !dontWrite {
		errs = append(errs, "final stage lacks ENV PYTHONDONTWRITEBYTECODE=1")
	}
	for _, p := range []int{s.Port, s.MetricsPort} {
		if p != 0 && !exposed[p] {
			errs = append(errs, fmt.Sprintf("final stage does not EXPOSE %d (the chart's port)", p))
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
