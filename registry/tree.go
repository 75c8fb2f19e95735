package registry

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	yaml "go.yaml.in/yaml/v3"

	"github.com/featured-dev/featured/internal/jsoncheck"
)

// node is a parsed document, YAML or JSON, in one shape so that one decoder
// reports errors with the same paths for both.
type node struct {
	kind  nodeKind
	typ   scalarType // nodeScalar only
	value string     // nodeScalar: the text as written
	items []*node    // nodeList
	keys  []string   // nodeMap, in document order
	vals  []*node    // nodeMap, parallel to keys
}

type nodeKind uint8

const (
	nodeNull nodeKind = iota
	nodeScalar
	nodeList
	nodeMap
)

type scalarType uint8

const (
	scalarString scalarType = iota
	scalarInt
	scalarFloat
	scalarBool
)

func (n *node) describe() string {
	switch n.kind {
	case nodeNull:
		return "null"
	case nodeList:
		return "a list"
	case nodeMap:
		return "a mapping"
	}
	switch n.typ {
	case scalarInt, scalarFloat:
		return "the number " + n.value
	case scalarBool:
		return "the boolean " + n.value
	}
	return fmt.Sprintf("the string %q", n.value)
}

// maxTreeNodes bounds the nodes built from one document, including those
// reached through YAML aliases (a "billion laughs" document would expand
// without bound; see treeFromYAML for the tighter bound on aliases).
const maxTreeNodes = 1 << 20

// maxTreeDepth bounds nesting.
const maxTreeDepth = 64

var errTooBig = &ValidationError{Msg: fmt.Sprintf("document has more than %d nodes (after expanding aliases) or nests deeper than %d", maxTreeNodes, maxTreeDepth)}

func treeFromYAML(data []byte) (*node, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return &node{kind: nodeNull}, nil
		}
		return nil, &ValidationError{Msg: err.Error()}
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		if err != nil {
			return nil, &ValidationError{Msg: err.Error()}
		}
		return nil, &ValidationError{Msg: fmt.Sprintf("yaml: line %d: more than one document; put all definitions in one", extra.Line)}
	}
	// Aliases may repeat a node, but not blow a small document up: the
	// budget is a bit more than the document's own nodes.
	budget := min(maxTreeNodes, 2*countYAML(&doc, 0)+10_000)
	return convertYAML(&doc, &budget, 0, "")
}

// countYAML counts the nodes as written, not following aliases.
func countYAML(y *yaml.Node, depth int) int {
	if depth > maxTreeDepth {
		return 0
	}
	n := 1
	for _, c := range y.Content {
		n += countYAML(c, depth+1)
	}
	return n
}

func convertYAML(y *yaml.Node, budget *int, depth int, path string) (*node, error) {
	*budget--
	if *budget < 0 || depth > maxTreeDepth {
		return nil, errTooBig
	}
	switch y.Kind {
	case yaml.DocumentNode:
		if len(y.Content) == 0 {
			return &node{kind: nodeNull}, nil
		}
		return convertYAML(y.Content[0], budget, depth+1, path)
	case yaml.AliasNode:
		if y.Alias == nil {
			return nil, &ValidationError{Path: path, Msg: fmt.Sprintf("yaml: line %d: unknown alias", y.Line)}
		}
		return convertYAML(y.Alias, budget, depth+1, path)
	case yaml.SequenceNode:
		n := &node{kind: nodeList, items: make([]*node, 0, len(y.Content))}
		for i, c := range y.Content {
			cn, err := convertYAML(c, budget, depth+1, index(path, i))
			if err != nil {
				return nil, err
			}
			n.items = append(n.items, cn)
		}
		return n, nil
	case yaml.MappingNode:
		n := &node{kind: nodeMap}
		seen := make(map[string]int, len(y.Content)/2)
		for i := 0; i+1 < len(y.Content); i += 2 {
			k, v := y.Content[i], y.Content[i+1]
			if k.Kind != yaml.ScalarNode {
				return nil, &ValidationError{Path: path, Msg: fmt.Sprintf("yaml: line %d: keys must be strings", k.Line)}
			}
			if k.ShortTag() == "!!merge" {
				return nil, &ValidationError{Path: child(path, k.Value), Msg: fmt.Sprintf("yaml: line %d: merge keys (<<) are not supported", k.Line)}
			}
			if first, dup := seen[k.Value]; dup {
				return nil, &ValidationError{Path: child(path, k.Value), Msg: fmt.Sprintf("yaml: line %d: duplicate key (first on line %d)", k.Line, first)}
			}
			seen[k.Value] = k.Line
			cn, err := convertYAML(v, budget, depth+1, child(path, k.Value))
			if err != nil {
				return nil, err
			}
			n.keys = append(n.keys, k.Value)
			n.vals = append(n.vals, cn)
		}
		return n, nil
	case yaml.ScalarNode:
		switch y.ShortTag() {
		case "!!null":
			return &node{kind: nodeNull}, nil
		case "!!int":
			return &node{kind: nodeScalar, typ: scalarInt, value: y.Value}, nil
		case "!!float":
			return &node{kind: nodeScalar, typ: scalarFloat, value: y.Value}, nil
		case "!!bool":
			return &node{kind: nodeScalar, typ: scalarBool, value: y.Value}, nil
		}
		return &node{kind: nodeScalar, typ: scalarString, value: y.Value}, nil
	}
	return nil, &ValidationError{Path: path, Msg: fmt.Sprintf("yaml: line %d: unsupported node", y.Line)}
}

func treeFromJSON(data []byte) (*node, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	budget := maxTreeNodes
	n, err := readJSON(dec, &budget, 0, "")
	if err != nil {
		return nil, err
	}
	if tok, err := dec.Token(); !errors.Is(err, io.EOF) {
		if err != nil {
			return nil, jsonError(dec, err)
		}
		return nil, &ValidationError{Msg: fmt.Sprintf("json: offset %d: unexpected %v after the document", dec.InputOffset(), tok)}
	}
	// What encoding/json lets through (lone surrogates, bad UTF-8, repeated
	// keys): refused alike on every path.
	if err := jsoncheck.Check(data); err != nil {
		return nil, &ValidationError{Msg: "json: " + err.Error()}
	}
	return n, nil
}

func jsonError(dec *json.Decoder, err error) error {
	if errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	return &ValidationError{Msg: fmt.Sprintf("json: offset %d: %v", dec.InputOffset(), err)}
}

func readJSON(dec *json.Decoder, budget *int, depth int, path string) (*node, error) {
	*budget--
	if *budget < 0 || depth > maxTreeDepth {
		return nil, errTooBig
	}
	tok, err := dec.Token()
	if err != nil {
		return nil, jsonError(dec, err)
	}
	switch t := tok.(type) {
	case json.Delim:
		switch t {
		case '[':
			n := &node{kind: nodeList}
			for i := 0; dec.More(); i++ {
				c, err := readJSON(dec, budget, depth+1, index(path, i))
				if err != nil {
					return nil, err
				}
				n.items = append(n.items, c)
			}
			if _, err := dec.Token(); err != nil {
				return nil, jsonError(dec, err)
			}
			return n, nil
		case '{':
			n := &node{kind: nodeMap}
			seen := make(map[string]bool)
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return nil, jsonError(dec, err)
				}
				k, ok := kt.(string)
				if !ok {
					return nil, &ValidationError{Path: path, Msg: fmt.Sprintf("json: offset %d: object key is not a string", dec.InputOffset())}
				}
				if seen[k] {
					return nil, &ValidationError{Path: child(path, k), Msg: fmt.Sprintf("json: offset %d: duplicate key", dec.InputOffset())}
				}
				seen[k] = true
				c, err := readJSON(dec, budget, depth+1, child(path, k))
				if err != nil {
					return nil, err
				}
				n.keys = append(n.keys, k)
				n.vals = append(n.vals, c)
			}
			if _, err := dec.Token(); err != nil {
				return nil, jsonError(dec, err)
			}
			return n, nil
		}
		return nil, &ValidationError{Msg: fmt.Sprintf("json: offset %d: unexpected %v", dec.InputOffset(), t)}
	case nil:
		return &node{kind: nodeNull}, nil
	case string:
		return &node{kind: nodeScalar, typ: scalarString, value: t}, nil
	case bool:
		return &node{kind: nodeScalar, typ: scalarBool, value: fmt.Sprint(t)}, nil
	case json.Number:
		typ := scalarInt
		if strings.ContainsAny(string(t), ".eE") {
			typ = scalarFloat
		}
		return &node{kind: nodeScalar, typ: typ, value: string(t)}, nil
	}
	return nil, &ValidationError{Msg: fmt.Sprintf("json: offset %d: unexpected token %v", dec.InputOffset(), tok)}
}
