package helmtest

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// instruction is one Dockerfile instruction, continuation lines joined.
type instruction struct {
	cmd  string // upper case: FROM, RUN, COPY, ...
	args string
}

func parseDockerfile(text string) ([]instruction, error) {
	var out []instruction
	var cur strings.Builder
	for line := range strings.Lines(text) {
		line = strings.TrimRight(line, "\r\n")
		trimmed := strings.TrimSpace(line)
		if cur.Len() == 0 && (trimmed == "" || strings.HasPrefix(trimmed, "#")) {
			continue
		}
		if strings.HasSuffix(trimmed, "\\") {
			cur.WriteString(strings.TrimSuffix(trimmed, "\\") + " ")
			continue
		}
		cur.WriteString(trimmed)
		cmd, args, _ := strings.Cut(cur.String(), " ")
		out = append(out, instruction{cmd: strings.ToUpper(cmd), args: strings.TrimSpace(args)})
		cur.Reset()
	}
	return out, nil
}

// TestDockerfile checks what docker would build without docker: a Go 1.26
// builder compiling cmd/featured statically, a distroless static nonroot
// image, the binary copied from where it was built to where ENTRYPOINT runs
// it, and the uid the chart pins.
func TestDockerfile(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "..", "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	ins, err := parseDockerfile(string(data))
	if err != nil {
		t.Fatal(err)
	}
	type stage struct {
		base, name string
		ins        []instruction
	}
	var stages []*stage
	fromRE := regexp.MustCompile(`^(\S+)(?:\s+AS\s+(\S+))?$`)
	for _, in := range ins {
		if in.cmd == "FROM" {
			m := fromRE.FindStringSubmatch(in.args)
			if m == nil {
				t.Fatalf("FROM %s: not IMAGE [AS NAME]", in.args)
			}
			stages = append(stages, &stage{base: m[1], name: m[2]})
			continue
		}
		if len(stages) == 0 {
			if in.cmd != "ARG" {
				t.Fatalf("%s before the first FROM", in.cmd)
			}
			continue
		}
		stages[len(stages)-1].ins = append(stages[len(stages)-1].ins, in)
	}
	if len(stages) != 2 {
		t.Fatalf("%d stages, want a builder and the image", len(stages))
	}
	build, final := stages[0], stages[1]
	if !strings.HasPrefix(build.base, "golang:1.26") || build.name == "" {
		t.Errorf("builder FROM %s AS %s, want golang:1.26 with a stage name", build.base, build.name)
	}
	if !regexp.MustCompile(`^gcr\.io/distroless/static(-debian\d+)?:nonroot$`).MatchString(final.base) {
		t.Errorf("image FROM %s, want gcr.io/distroless/static...:nonroot", final.base)
	}

	// The build: static (cgo off), cmd/featured, output path.
	var built string
	static := false
	for _, in := range build.ins {
		if strings.Contains(in.args, "CGO_ENABLED=0") && (in.cmd == "ENV" || in.cmd == "RUN") {
			static = true
		}
		if in.cmd == "RUN" && strings.Contains(in.args, "go build") {
			m := regexp.MustCompile(`-o\s+(\S+)\s+(\S+)\s*$`).FindStringSubmatch(in.args)
			if m == nil {
				t.Fatalf("RUN %s: want `go build ... -o OUT ./cmd/featured` last", in.args)
			}
			built = m[1]
			if m[2] != "./cmd/featured" {
				t.Errorf("go build %s, want ./cmd/featured", m[2])
			}
		}
	}
	if !static {
		t.Errorf("the builder does not set CGO_ENABLED=0: the binary would need libc, which distroless/static lacks")
	}
	if built == "" {
		t.Fatal("the builder runs no go build")
	}
	if _, err := os.Stat(filepath.Join("..", "..", "cmd", "featured", "main.go")); err != nil {
		t.Errorf("the Dockerfile builds ./cmd/featured: %v", err)
	}

	// The image: the built binary copied from the builder, run by ENTRYPOINT,
	// as the chart's uid.
	var installed, entry, user string
	for _, in := range final.ins {
		switch in.cmd {
		case "COPY":
			f := strings.Fields(in.args)
			if len(f) == 3 && f[0] == "--from="+build.name && f[1] == built {
				installed = f[2]
			}
		case "ENTRYPOINT":
			var argv []string
			if err := json.Unmarshal([]byte(in.args), &argv); err != nil || len(argv) == 0 {
				t.Fatalf("ENTRYPOINT %s: want exec form, %v", in.args, err)
			}
			entry = argv[0]
		case "USER":
			user = in.args
		}
	}
	if installed == "" || installed != entry {
		t.Errorf("COPY --from=%s %s installs to %q, ENTRYPOINT runs %q", build.name, built, installed, entry)
	}
	uid, _, _ := strings.Cut(user, ":")
	if n, err := strconv.Atoi(uid); err != nil || n != nonrootUID {
		t.Errorf("USER %q, want uid %d (the chart's runAsUser)", user, nonrootUID)
	}
}
