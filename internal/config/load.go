package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// FieldError is one problem in a config, located by field path and, when the
// config came from YAML, by file and line.
type FieldError struct {
	File string // "" when unknown
	Line int    // 0 when unknown
	// Path is the field path, e.g. "routes[2].match.path".
	Path string
	Msg  string
	Err  error // the underlying error, if any

	// linePath, when set, locates the error at that path's line if Path
	// itself is not in the file (a required section that is missing).
	linePath string
}

// Error formats as "file:line: path: msg".
func (e *FieldError) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		b.WriteByte(':')
	}
	if e.Line > 0 {
		b.WriteString(strconv.Itoa(e.Line))
		b.WriteByte(':')
	}
	if b.Len() > 0 {
		b.WriteByte(' ')
	}
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Unwrap returns the underlying error.
func (e *FieldError) Unwrap() error { return e.Err }

// Errors is every problem found in a config, in file order.
type Errors []*FieldError

// Error joins the errors one per line.
func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap exposes each FieldError to errors.Is and errors.As.
func (es Errors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}

// Load reads, decodes, defaults and validates the config file at path.
// On failure the error is an Errors listing every problem found.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, Errors{{File: path, Msg: err.Error(), Err: err}}
	}
	return Parse(path, data, os.LookupEnv)
}

// Parse decodes data (named file in errors), substitutes ${ENV} references
// with lookup, applies defaults and validates. lookup may be nil for no
// environment.
//
// A config that decodes cleanly is parsed once, straight into the typed
// config; the YAML is parsed a second time, into nodes that give every
// field path its line, only when there is an error to locate. A reload of
// a large, valid config so pays for one pass.
func Parse(file string, data []byte, lookup func(string) (string, bool)) (*Config, error) {
	if cfg, ok := decodeClean(file, data, lookup); ok {
		cfg.ApplyEnv(lookup)
		cfg.SetDefaults()
		errs := cfg.check()
		if errs == nil {
			return cfg, nil
		}
		sub, _ := substituteEnv(file, data, lookup)
		errs.locate(indexYAML(sub))
		return nil, mergeErrors(nil, errs)
	}
	cfg, lines, decodeErrs := decode(file, data, lookup)
	if cfg == nil {
		return nil, decodeErrs
	}
	cfg.ApplyEnv(lookup)
	cfg.SetDefaults()
	// Validate even when decoding found problems, so that one run reports
	// every error: an unknown field beside a bad value, a bad duration
	// beside a bad URL. A field that failed to decode was left at its zero
	// value; what validation says about that field (or what it holds) is
	// dropped, since the decode error already names it.
	if err := cfg.validate(lines); err != nil || len(decodeErrs) > 0 {
		var verrs Errors
		errors.As(err, &verrs)
		return nil, mergeErrors(decodeErrs, verrs)
	}
	return cfg, nil
}

// decodeClean strictly decodes data into a Config in one pass, and
// reports whether that went without any error (environment references
// included). When it did not, the caller decodes again with decode, which
// locates every error.
func decodeClean(file string, data []byte, lookup func(string) (string, bool)) (*Config, bool) {
	data, errs := substituteEnv(file, data, lookup)
	if len(errs) > 0 {
		return nil, false
	}
	cfg := &Config{File: file}
	if len(bytes.TrimSpace(data)) > 0 {
		dec := yaml.NewDecoder(bytes.NewReader(data))
		dec.KnownFields(true)
		if err := dec.Decode(cfg); err != nil && !errors.Is(err, io.EOF) {
			return nil, false
		}
	}
	return cfg, true
}

// indexYAML returns the line index of data (environment substituted), empty
// when it does not parse.
func indexYAML(data []byte) lineIndex {
	lines := lineIndex{}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err == nil {
		indexLines(&root, "", lines)
	}
	return lines
}

// mergeErrors returns decodeErrs followed by the validation errors that do
// not concern a field decoding already reported (the same field path or one
// under it, or the same line), sorted by line.
func mergeErrors(decodeErrs, validateErrs Errors) Errors {
	out := append(Errors(nil), decodeErrs...)
	for _, ve := range validateErrs {
		if !coveredBy(ve, decodeErrs) {
			out = append(out, ve)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Line < out[j].Line })
	return out
}

func coveredBy(ve *FieldError, decodeErrs Errors) bool {
	for _, de := range decodeErrs {
		if de.Line > 0 && de.Line == ve.Line {
			return true
		}
		if de.Path == "" {
			continue
		}
		if ve.Path == de.Path || strings.HasPrefix(ve.Path, de.Path+".") || strings.HasPrefix(ve.Path, de.Path+"[") {
			return true
		}
	}
	return false
}

// lineIndex maps field paths to the YAML line that holds them.
type lineIndex map[string]int

// lineOf returns the line of path or of its nearest ancestor that has one.
func (li lineIndex) lineOf(path string) int {
	for path != "" {
		if l, ok := li[path]; ok {
			return l
		}
		i := strings.LastIndexAny(path, ".[")
		if i < 0 {
			break
		}
		path = path[:i]
	}
	return 0
}

// pathAt returns the deepest field path declared on line, or "": the
// longest, and of those the first in byte order, so that the same file
// always names the same path.
func (li lineIndex) pathAt(line int) string {
	best := ""
	for p, l := range li {
		if l == line && (len(p) > len(best) || len(p) == len(best) && p < best) {
			best = p
		}
	}
	return best
}

// Decode strictly decodes data into a Config without defaults or
// validation. Unknown keys and wrong types are errors; every one is
// reported, not only the first.
func Decode(file string, data []byte, lookup func(string) (string, bool)) (*Config, lineIndex, error) {
	cfg, lines, errs := decode(file, data, lookup)
	if len(errs) > 0 {
		return nil, nil, errs
	}
	return cfg, lines, nil
}

// decode is Decode that also returns what it could decode beside the
// errors: the config is nil only when the YAML does not parse at all.
// Decoding goes on past an unknown key or a bad value (yaml.v3 collects
// type errors; the unmarshalers of this package return *yaml.TypeError
// for that reason), so the fields after it are still read and checked.
func decode(file string, data []byte, lookup func(string) (string, bool)) (*Config, lineIndex, Errors) {
	data, errs := substituteEnv(file, data, lookup)
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, nil, append(errs, yamlErrors(file, nil, err)...)
	}
	lines := lineIndex{}
	indexLines(&root, "", lines)
	for _, e := range errs {
		if e.Path == "" && e.Line > 0 {
			e.Path = lines.pathAt(e.Line)
		}
	}

	cfg := &Config{File: file}
	if len(bytes.TrimSpace(data)) > 0 {
		dec := yaml.NewDecoder(bytes.NewReader(data))
		dec.KnownFields(true)
		if err := dec.Decode(cfg); err != nil && !errors.Is(err, io.EOF) {
			errs = append(errs, yamlErrors(file, lines, err)...)
		}
	}
	sort.SliceStable(errs, func(i, j int) bool { return errs[i].Line < errs[j].Line })
	return cfg, lines, errs
}

func indexLines(n *yaml.Node, path string, lines lineIndex) {
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			indexLines(c, path, lines)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			p := k.Value
			if path != "" {
				p = path + "." + k.Value
			}
			lines[p] = k.Line
			indexLines(v, p, lines)
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			p := fmt.Sprintf("%s[%d]", path, i)
			lines[p] = c.Line
			indexLines(c, p, lines)
		}
	}
}

var yamlLineRE = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)

// yamlErrors turns a yaml.v3 error into located FieldErrors.
func yamlErrors(file string, lines lineIndex, err error) Errors {
	var msgs []string
	var te *yaml.TypeError
	if errors.As(err, &te) {
		msgs = te.Errors
	} else {
		msgs = []string{err.Error()}
	}
	var out Errors
	for _, m := range msgs {
		fe := &FieldError{File: file, Msg: m, Err: err}
		if sm := yamlLineRE.FindStringSubmatch(m); sm != nil {
			fe.Line, _ = strconv.Atoi(sm[1])
			fe.Msg = sm[2]
			if lines != nil {
				fe.Path = lines.pathAt(fe.Line)
			}
		}
		fe.Msg = friendlyYAML(fe.Msg)
		out = append(out, fe)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Line < out[j].Line })
	return out
}

var (
	unknownFieldRE = regexp.MustCompile(`^field (\S+) not found in type config\.(\w+)$`)
	unmarshalRE    = regexp.MustCompile(`^cannot unmarshal !!(\w+) ` + "`" + `?(.*?)` + "`" + `? into (\S+)$`)
)

func friendlyYAML(msg string) string {
	if m := unknownFieldRE.FindStringSubmatch(msg); m != nil {
		return fmt.Sprintf("unknown field %q", m[1])
	}
	if m := unmarshalRE.FindStringSubmatch(msg); m != nil {
		return fmt.Sprintf("cannot use %s %q as %s", m[1], m[2], strings.TrimPrefix(m[3], "config."))
	}
	return msg
}

// substituteEnv replaces ${NAME} and ${NAME:-default} with the variable's
// value; "$${" writes a literal "${". A reference to an unset variable
// without a default is an error. Comments are left alone.
func substituteEnv(file string, data []byte, lookup func(string) (string, bool)) ([]byte, Errors) {
	if !bytes.Contains(data, []byte("${")) {
		return data, nil
	}
	var errs Errors
	var out bytes.Buffer
	for n, line := range bytes.SplitAfter(data, []byte("\n")) {
		code, comment := splitComment(line)
		out.Write(substituteLine(file, n+1, code, lookup, &errs))
		out.Write(comment)
	}
	return out.Bytes(), errs
}

// splitComment splits a YAML line before its comment: a '#' at the start or
// after white space, outside quotes.
func splitComment(line []byte) (code, comment []byte) {
	var quote byte
	for i, c := range line {
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '"' || c == '\'':
			quote = c
		case c == '#' && (i == 0 || line[i-1] == ' ' || line[i-1] == '\t'):
			return line[:i], line[i:]
		}
	}
	return line, nil
}

func substituteLine(file string, lineNo int, data []byte, lookup func(string) (string, bool), errs *Errors) []byte {
	if !bytes.Contains(data, []byte("${")) {
		return data
	}
	var out bytes.Buffer
	for i := 0; i < len(data); i++ {
		c := data[i]
		if c == '$' && i+2 < len(data) && data[i+1] == '$' && data[i+2] == '{' {
			out.WriteByte('$')
			i++
			continue
		}
		if c != '$' || i+1 >= len(data) || data[i+1] != '{' {
			out.WriteByte(c)
			continue
		}
		end := bytes.IndexByte(data[i+2:], '}')
		if end < 0 {
			*errs = append(*errs, &FieldError{File: file, Line: lineNo, Msg: "unterminated ${ in environment reference"})
			out.WriteByte(c)
			continue
		}
		ref := string(data[i+2 : i+2+end])
		name, def, hasDef := strings.Cut(ref, ":-")
		if !validEnvName(name) {
			*errs = append(*errs, &FieldError{File: file, Line: lineNo, Msg: fmt.Sprintf("invalid environment variable name %q", name)})
		} else {
			val, ok := "", false
			if lookup != nil {
				val, ok = lookup(name)
			}
			switch {
			case ok && (val != "" || !hasDef):
				out.WriteString(val)
			case hasDef:
				out.WriteString(def)
			default:
				*errs = append(*errs, &FieldError{File: file, Line: lineNo, Msg: fmt.Sprintf("environment variable %s is not set (use ${%s:-default} for a default)", name, name)})
			}
		}
		i += 2 + end
	}
	return out.Bytes()
}

func validEnvName(s string) bool {
	if s == "" {
		return false
	}
	for i, c := range s {
		if c == '_' || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (i > 0 && c >= '0' && c <= '9') {
			continue
		}
		return false
	}
	return true
}
