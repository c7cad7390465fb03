package main

// deploylint buildstage: runs the builder stage of deploy/Dockerfile for one
// service without a container engine (none is available here), so the image's uv
// steps are proven against the real uv.lock on every check:
//
//   - ARG SERVICE is the -service flag (as --build-arg SERVICE=<name> sets it) and
//     is expanded in COPY and ENV; RUN sees it as an environment variable
//   - ENV of the stage is applied; absolute paths are moved under -workdir, and
//     UV_PYTHON becomes the host's Python 3.11 (the image's python:3.11 stand-in)
//   - COPY (not --from) copies from the repository, honouring .dockerignore's
//     exclusions; COPY --from=<uv image> is replaced by the host's uv
//   - RUN runs with bash in the stage's WORKDIR (--mount options dropped)
//
// Then the resulting virtualenv must import <name>.app from its own
// site-packages (non-editable, no source tree needed) with bytecode compiled.

import (
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

type ignorer struct {
	allow []string // "!" patterns: what may be sent at all
	deny  []string
}

func readDockerignore(root string) (*ignorer, error) {
	data, err := os.ReadFile(filepath.Join(root, ".dockerignore"))
	if err != nil {
		return nil, err
	}
	ig := &ignorer{}
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "" || strings.HasPrefix(line, "#") || line == "**":
		case strings.HasPrefix(line, "!"):
			ig.allow = append(ig.allow, strings.TrimSuffix(line[1:], "/"))
		default:
			ig.deny = append(ig.deny, strings.TrimSuffix(line, "/"))
		}
	}
	return ig, nil
}

// excluded reports whether rel (slash-separated, from the root) is left out of
// the build context. Supports the forms .dockerignore uses: "**/<glob>" on any
// path element and plain globs on the whole path.
func (ig *ignorer) excluded(rel string) bool {
	allowed := len(ig.allow) == 0
	for _, a := range ig.allow {
		if rel == a || strings.HasPrefix(rel, a+"/") {
			allowed = true
		}
	}
	if !allowed {
		return true
	}
	parts := strings.Split(rel, "/")
	for _, d := range ig.deny {
		if strings.HasPrefix(d, "**/") {
			for _, p := range parts {
				if ok, _ := filepath.Match(d[3:], p); ok {
					return true
				}
			}
		} else if ok, _ := filepath.Match(d, rel); ok {
			return true
		}
	}
	return false
}

func copyTree(root, src, dst string, ig *ignorer) error {
	return filepath.Walk(filepath.Join(root, src), func(path string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		rel = filepath.ToSlash(rel)
		if ig.excluded(rel) {
			if info.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		within, _ := filepath.Rel(filepath.Join(root, src), path)
		target := filepath.Join(dst, within)
		if info.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
			return err
		}
		in, err := os.Open(path)
		if err != nil {
			return err
		}
		defer in.Close()
		out, err := os.OpenFile(target, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, info.Mode().Perm())
		if err != nil {
			return err
		}
		if _, err := io.Copy(out, in); err != nil {
			out.Close()
			return err
		}
		return out.Close()
	})
}

func runBuildstage(args []string) int {
	fs := flag.NewFlagSet("buildstage", flag.ExitOnError)
	root := fs.String("root", ".", "repository root")
	name := fs.String("service", "", "service name: the folder under services/, the build argument SERVICE")
	work := fs.String("workdir", "", "empty scratch directory")
	python := fs.String("python", "python3.11", "host Python 3.11 standing in for the base image's")
	uv := fs.String("uv", "python3.11 -m uv", "command that runs uv on the host")
	_ = fs.Parse(args)
	if *name == "" || *work == "" {
		fmt.Fprintln(os.Stderr, "usage: deploylint buildstage -root DIR -service NAME -workdir DIR")
		return 2
	}
	fail := func(format string, a ...any) int {
		fmt.Fprintf(os.Stderr, "deploylint buildstage %s: %s\n", *name, fmt.Sprintf(format, a...))
		return 1
	}
	ins, err := parseDockerfile(filepath.Join(*root, dockerfilePath))
	if err != nil {
		return fail("%v", err)
	}
	ig, err := readDockerignore(*root)
	if err != nil {
		return fail("%v", err)
	}
	hostPython, err := exec.LookPath(*python)
	if err != nil {
		return fail("%v", err)
	}
	bin := filepath.Join(*work, "host-bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		return fail("%v", err)
	}
	shim := "#!/bin/sh\nexec " + *uv + " \"$@\"\n"
	if err := os.WriteFile(filepath.Join(bin, "uv"), []byte(shim), 0o755); err != nil {
		return fail("%v", err)
	}
	under := func(p string) string { return filepath.Join(*work, "fs", p) }

	env := map[string]string{}
	for _, kv := range os.Environ() {
		k, v, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(k, "UV_") && k != "VIRTUAL_ENV" {
			env[k] = v
		}
	}
	env["PATH"] = bin + ":" + env["PATH"]
	buildArgs := map[string]string{"SERVICE": *name}
	expand := func(v string) string {
		return os.Expand(v, func(k string) string {
			if a, ok := buildArgs[k]; ok {
				return a
			}
			return env[k]
		})
	}
	dir := under("/")
	inBuilder, steps := false, 0
	for _, i := range ins {
		if i.cmd == "FROM" {
			if inBuilder {
				break
			}
			inBuilder = strings.HasSuffix(strings.ToLower(i.args), " as builder")
			continue
		}
		if !inBuilder {
			continue
		}
		switch i.cmd {
		case "ARG":
			k, v, _ := strings.Cut(i.args, "=")
			if _, given := buildArgs[k]; !given {
				buildArgs[k] = v
			}
			env[k] = buildArgs[k]
		case "ENV":
			for _, kv := range strings.Fields(i.args) {
				k, v, _ := strings.Cut(kv, "=")
				v = expand(v)
				switch {
				case k == "UV_PYTHON":
					v = hostPython
				case k == "UV_LINK_MODE":
					// Hard links from uv's cache: the same virtualenv, much less copying
					// (in the image, copy mode matters because the cache is a mount).
					v = "hardlink"
				case strings.HasPrefix(v, "/"):
					v = under(v)
				}
				env[k] = v
			}
		case "WORKDIR":
			dir = under(i.args)
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return fail("%v", err)
			}
		case "COPY":
			if strings.Contains(i.args, "--from=") {
				continue
			}
			f := strings.Fields(expand(i.args))
			srcs, dst := f[:len(f)-1], f[len(f)-1]
			if !filepath.IsAbs(dst) {
				dst = filepath.Join(dir, dst)
			} else {
				dst = under(dst)
			}
			for _, src := range srcs {
				if ig.excluded(src) {
					return fail("line %d: COPY %s: excluded by .dockerignore", i.line, src)
				}
				target := dst
				if len(srcs) > 1 || strings.HasSuffix(f[len(f)-1], "/") {
					target = filepath.Join(dst, filepath.Base(src))
				}
				if err := copyTree(*root, src, target, ig); err != nil {
					return fail("line %d: %v", i.line, err)
				}
			}
			steps++
		case "RUN":
			cmdline := i.args
			for strings.HasPrefix(cmdline, "--") {
				_, rest, _ := strings.Cut(cmdline, " ")
				cmdline = strings.TrimSpace(rest)
			}
			fmt.Printf("deploylint buildstage %s: RUN %s\n", *name, cmdline)
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return fail("%v", err)
			}
			cmd := exec.Command("bash", "-euo", "pipefail", "-c", cmdline)
			cmd.Dir = dir
			cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
			for k, v := range env {
				cmd.Env = append(cmd.Env, k+"="+v)
			}
			if err := cmd.Run(); err != nil {
				return fail("line %d: RUN failed: %v", i.line, err)
			}
			steps++
		}
	}
	if steps == 0 {
		return fail("no builder stage (FROM ... AS builder) with COPY/RUN steps")
	}
	venv := env["UV_PROJECT_ENVIRONMENT"]
	if venv == "" {
		return fail("the builder stage sets no UV_PROJECT_ENVIRONMENT")
	}
	probe := fmt.Sprintf(`import importlib, pathlib, sys
m = importlib.import_module(%q)
path = pathlib.Path(m.__file__).resolve()
assert str(path).startswith(sys.prefix), f"{path} is outside the virtualenv (editable install?)"
assert any(path.parent.glob("__pycache__/app.*.pyc")), "bytecode was not compiled at build"
print(f"{m.__name__} imports from {path.relative_to(sys.prefix)}")`, *name+".app")
	cmd := exec.Command(filepath.Join(venv, "bin", "python"), "-I", "-c", probe)
	cmd.Dir = *work
	cmd.Env = []string{"PATH=/usr/bin:/bin", "PYTHONDONTWRITEBYTECODE=1", "HOME=" + *work}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fail("the built virtualenv does not work: %v\n%s", err, out)
	}
	fmt.Printf("deploylint buildstage %s: OK, %d steps; %s", *name, steps, out)
	return 0
}
