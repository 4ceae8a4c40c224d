package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// toolPackages maps each external tool to the Debian package providing it.
var toolPackages = map[string]string{
	"wrk":     "wrk",
	"nginx":   "nginx-light",
	"haproxy": "haproxy",
	"caddy":   "caddy",
}

// lookTool finds a tool on PATH or in the sbin directories root's PATH has
// but a user's may lack.
func lookTool(name string) (string, bool) {
	if p, err := exec.LookPath(name); err == nil {
		return p, true
	}
	for _, dir := range []string{"/usr/sbin", "/sbin", "/usr/local/sbin", "/usr/local/bin"} {
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p, true
		}
	}
	return "", false
}

// ensureTools returns the path of each needed tool, installing the missing
// ones with apt-get (running apt-get update first only if the install
// fails).
func ensureTools(ctx context.Context, needed []string, install bool) (map[string]string, error) {
	paths := make(map[string]string)
	var missing, pkgs []string
	for _, t := range needed {
		if p, ok := lookTool(t); ok {
			paths[t] = p
			continue
		}
		missing = append(missing, t)
		pkgs = append(pkgs, toolPackages[t])
	}
	if len(missing) == 0 {
		logf("tools present (%s); install skipped", strings.Join(needed, ", "))
		return paths, nil
	}
	if !install {
		return nil, fmt.Errorf("missing tools %s and -install=false; install the Debian packages %s",
			strings.Join(missing, ", "), strings.Join(pkgs, " "))
	}
	apt, ok := lookTool("apt-get")
	if !ok {
		return nil, fmt.Errorf("missing tools %s and no apt-get to install them (Debian packages: %s)",
			strings.Join(missing, ", "), strings.Join(pkgs, " "))
	}
	prefix := []string{apt}
	if os.Geteuid() != 0 {
		sudo, ok := lookTool("sudo")
		if !ok {
			return nil, fmt.Errorf("missing tools %s; installing needs root: run as root or install %s",
				strings.Join(missing, ", "), strings.Join(pkgs, " "))
		}
		prefix = []string{sudo, "-n", apt}
	}
	installArgs := append(append(cloneArgs(prefix), "install", "-y", "--no-install-recommends"), pkgs...)
	logf("installing %s: %s", strings.Join(missing, ", "), strings.Join(installArgs, " "))
	if err := runLogged(ctx, installArgs); err != nil {
		logf("install failed (%v); running apt-get update and retrying", err)
		if err := runLogged(ctx, append(cloneArgs(prefix), "update")); err != nil {
			return nil, fmt.Errorf("apt-get update: %w", err)
		}
		if err := runLogged(ctx, installArgs); err != nil {
			return nil, fmt.Errorf("apt-get install %s: %w", strings.Join(pkgs, " "), err)
		}
	}
	for _, t := range missing {
		p, ok := lookTool(t)
		if !ok {
			return nil, fmt.Errorf("%s still not found after installing %s", t, toolPackages[t])
		}
		paths[t] = p
	}
	return paths, nil
}

func cloneArgs(s []string) []string { return append([]string(nil), s...) }

// runLogged runs argv with its output on the harness's stderr.
func runLogged(ctx context.Context, argv []string) error {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	return cmd.Run()
}

// output runs argv for at most 10s and returns its combined output, trimmed.
func output(ctx context.Context, dir string, argv ...string) (string, error) {
	return outputWithin(ctx, 10*time.Second, dir, argv...)
}

// outputWithin is output bounded by d instead of 10 s.
func outputWithin(ctx context.Context, d time.Duration, dir string, argv ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Dir = dir
	var b bytes.Buffer
	cmd.Stdout, cmd.Stderr = &b, &b
	err := cmd.Run()
	return strings.TrimSpace(b.String()), err
}

// toolVersion returns a one-line version of a tool ("" if unknown).
func toolVersion(ctx context.Context, name, path string) string {
	var out string
	switch name {
	case "nginx":
		out, _ = output(ctx, "", path, "-v")
		out = strings.TrimPrefix(firstLine(out), "nginx version: ")
	case "haproxy":
		out, _ = output(ctx, "", path, "-v")
		if f := strings.Fields(firstLine(out)); len(f) >= 3 && f[1] == "version" {
			out = "HAProxy " + f[2]
		}
	case "caddy":
		out, _ = output(ctx, "", path, "version")
		if f := strings.Fields(firstLine(out)); len(f) > 0 {
			out = "caddy " + f[0]
		}
	case "wrk":
		out, _ = output(ctx, "", path, "-v") // exits 1 after printing its version
		if f := strings.Fields(firstLine(out)); len(f) >= 2 {
			out = f[0] + " " + f[1]
		}
	}
	return firstLine(out)
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "harness: "+format+"\n", args...)
}
