package serving_test

import (
	"encoding/json"
	"os/exec"
	"testing"

	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"

	feastcore "github.com/featured-dev/featured/api/feast/core"
	feastserving "github.com/featured-dev/featured/api/feast/serving"
	feasttypes "github.com/featured-dev/featured/api/feast/types"
)

// feastDescriptorScript prints, as JSON, the descriptors that the feast
// wheel embeds in its generated ServingService_pb2.py and Registry_pb2.py
// and the files they import: per file its package, messages (nested ones by full name) with
// every field, enums with every value, and services with their methods.
const feastDescriptorScript = `
import json
from google.protobuf import descriptor_pb2
import feast.protos.feast.serving.ServingService_pb2 as serving
import feast.protos.feast.core.Registry_pb2 as registry
out = {}
def msgs(prefix, ds, acc):
    for d in ds:
        name = prefix + "." + d.name
        acc["messages"][name] = [{"name": f.name, "number": f.number, "label": f.label, "type": f.type,
            "type_name": f.type_name, "oneof": d.oneof_decl[f.oneof_index].name if f.HasField("oneof_index") else ""}
            for f in d.field]
        for e in d.enum_type:
            acc["enums"][name + "." + e.name] = {v.name: v.number for v in e.value}
        msgs(name, d.nested_type, acc)
def walk(fd):
    if fd.name in out or fd.name.startswith("google/"):
        return
    p = descriptor_pb2.FileDescriptorProto()
    fd.CopyToProto(p)
    acc = {"package": p.package, "messages": {}, "enums": {}, "services": {}}
    msgs("." + p.package, p.message_type, acc)
    for e in p.enum_type:
        acc["enums"]["." + p.package + "." + e.name] = {v.name: v.number for v in e.value}
    for s in p.service:
        acc["services"]["." + p.package + "." + s.name] = {x.name: [x.input_type, x.output_type] for x in s.method}
    out[fd.name] = acc
    for d in fd.dependencies:
        walk(d)
walk(serving.DESCRIPTOR)
walk(registry.DESCRIPTOR)
print(json.dumps(out))
`

type wheelField struct {
	Name     string
	Number   int32
	Label    int32
	Type     int32
	TypeName string `json:"type_name"`
	Oneof    string
}

type wheelFile struct {
	Package  string
	Messages map[string][]wheelField
	Enums    map[string]map[string]int32
	Services map[string]map[string][2]string
}

// TestFeastDescriptors checks api/feast (every file registered under the
// packages feast.serving, feast.types and feast.core) against the feast
// wheel: every
// message, field (number, label, type, type name, oneof), enum value and
// method of the Go descriptors is the wheel's, and every field of those
// messages in the wheel is in ours, so the wire is Feast's. Only the
// wheel's messages the service does not need are left out
// (feastOmitted). Without feast in the venv it skips, and fails under CI.
func TestFeastDescriptors(t *testing.T) {
	py := feastPython(t)
	out, err := exec.Command(py, "-c", feastDescriptorScript).Output()
	if err != nil {
		t.Fatalf("dump the wheel's descriptors: %v\n%s", err, out)
	}
	var wheel map[string]wheelFile
	if err := json.Unmarshal(out, &wheel); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	// Referenced so that the packages are linked and their files registered.
	_ = []protoreflect.FileDescriptor{feastserving.File_feast_serving_ServingService_proto,
		feasttypes.File_feast_types_Value_proto, feastcore.File_feast_core_Registry_proto}
	ours := map[string]protoreflect.FileDescriptor{}
	for _, pkg := range []protoreflect.FullName{"feast.serving", "feast.types", "feast.core"} {
		protoregistry.GlobalFiles.RangeFilesByPackage(pkg, func(fd protoreflect.FileDescriptor) bool {
			ours[fd.Path()] = fd
			return true
		})
	}
	if len(wheel) != len(ours) || len(ours) < 25 {
		t.Errorf("the wheel's service and registry import %d feast files, api/feast has %d", len(wheel), len(ours))
	}
	feastOmitted := map[string]bool{
		".feast.serving.FeatureReferenceV2":                               true,
		".feast.serving.GetOnlineFeaturesRequestV2":                       true,
		".feast.serving.GetOnlineFeaturesRequestV2.EntityRow":             true,
		".feast.serving.GetOnlineFeaturesRequestV2.EntityRow.FieldsEntry": true,
	}
	checked := 0
	for name, fd := range ours {
		w, ok := wheel[name]
		if !ok {
			t.Errorf("%s: not in the wheel", name)
			continue
		}
		fdp := protodesc.ToFileDescriptorProto(fd)
		if fdp.GetPackage() != w.Package {
			t.Errorf("%s: package %s, the wheel's %s", name, fdp.GetPackage(), w.Package)
		}
		our := wheelFile{Messages: map[string][]wheelField{}, Enums: map[string]map[string]int32{}, Services: map[string]map[string][2]string{}}
		collect("."+fdp.GetPackage(), fdp.GetMessageType(), &our)
		for _, e := range fdp.GetEnumType() {
			our.Enums["."+fdp.GetPackage()+"."+e.GetName()] = enumValues(e)
		}
		for _, s := range fdp.GetService() {
			m := map[string][2]string{}
			for _, x := range s.GetMethod() {
				m[x.GetName()] = [2]string{x.GetInputType(), x.GetOutputType()}
			}
			our.Services["."+fdp.GetPackage()+"."+s.GetName()] = m
		}
		for msg, fields := range our.Messages {
			wf, ok := w.Messages[msg]
			if !ok {
				t.Errorf("message %s: not in the wheel", msg)
				continue
			}
			byNum := map[int32]wheelField{}
			for _, f := range wf {
				byNum[f.Number] = f
			}
			for _, f := range fields {
				checked++
				if g, ok := byNum[f.Number]; !ok {
					t.Errorf("%s.%s = %d: no field %d in the wheel", msg, f.Name, f.Number, f.Number)
				} else if g != f {
					t.Errorf("%s field %d: ours %+v, the wheel's %+v", msg, f.Number, f, g)
				}
				delete(byNum, f.Number)
			}
			for _, g := range byNum {
				t.Errorf("%s: the wheel's field %s = %d is missing", msg, g.Name, g.Number)
			}
		}
		for msg := range w.Messages {
			if _, ok := our.Messages[msg]; !ok && !feastOmitted[msg] {
				t.Errorf("message %s of the wheel is missing", msg)
			}
		}
		for e, vals := range w.Enums {
			if feastOmitted[e[:max(0, len(e)-len(".Enum"))]] {
				continue
			}
			if !equalMaps(our.Enums[e], vals) {
				t.Errorf("enum %s: ours %v, the wheel's %v", e, our.Enums[e], vals)
			}
		}
		for e := range our.Enums {
			if _, ok := w.Enums[e]; !ok {
				t.Errorf("enum %s: not in the wheel", e)
			}
		}
		for s, methods := range w.Services {
			if !equalMaps(our.Services[s], methods) {
				t.Errorf("service %s: ours %v, the wheel's %v", s, our.Services[s], methods)
			}
		}
		if len(our.Services) != len(w.Services) {
			t.Errorf("%s: services %v, the wheel's %v", name, our.Services, w.Services)
		}
	}
	if checked < 400 {
		t.Errorf("only %d fields compared", checked)
	}
}

func collect(prefix string, ds []*descriptorpb.DescriptorProto, into *wheelFile) {
	for _, d := range ds {
		name := prefix + "." + d.GetName()
		var fields []wheelField
		for _, f := range d.GetField() {
			oneof := ""
			if f.OneofIndex != nil {
				oneof = d.GetOneofDecl()[f.GetOneofIndex()].GetName()
			}
			fields = append(fields, wheelField{Name: f.GetName(), Number: f.GetNumber(), Label: int32(f.GetLabel()),
				Type: int32(f.GetType()), TypeName: f.GetTypeName(), Oneof: oneof})
		}
		into.Messages[name] = fields
		for _, e := range d.GetEnumType() {
			into.Enums[name+"."+e.GetName()] = enumValues(e)
		}
		collect(name, d.GetNestedType(), into)
	}
}

func enumValues(e *descriptorpb.EnumDescriptorProto) map[string]int32 {
	m := map[string]int32{}
	for _, v := range e.GetValue() {
		m[v.GetName()] = v.GetNumber()
	}
	return m
}

func equalMaps[K comparable, V comparable](a, b map[K]V) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}
