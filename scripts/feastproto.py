"""feastproto.py prints, as .proto text, a proto file that the feast wheel
embeds as a serialized FileDescriptorProto (the wheel ships no .proto files).

It is how api/feast/core/*.proto were written (Feast 0.67.0); it is not part of
the build: the .proto files are committed sources, genproto.sh generates Go
from them, and TestFeastDescriptors in serving compares every field with the
wheel's. Run with the project venv (scripts/python-env.sh):

    .cache/venv/bin/python scripts/feastproto.py feast/core/Registry.proto HEADER > api/feast/core/Registry.proto

HEADER is the comment put at the top. Only what the generated Go depends on
is printed (messages, fields, oneofs, enums, reserved ranges, deprecated
marks); Feast's java options are left out and go_package is featured's.
"""
import importlib
import sys

from google.protobuf import descriptor_pb2

TYPES = {
    1: "double", 2: "float", 3: "int64", 4: "uint64", 5: "int32", 6: "fixed64", 7: "fixed32",
    8: "bool", 9: "string", 12: "bytes", 13: "uint32", 15: "sfixed32", 16: "sfixed64",
    17: "sint32", 18: "sint64",
}
GO_PACKAGES = {
    "feast.core": "github.com/featured-dev/featured/api/feast/core;feastcore",
    "feast.types": "github.com/featured-dev/featured/api/feast/types;feasttypes",
}


def load(name):
    mod = importlib.import_module("feast.protos." + name[: -len(".proto")].replace("/", ".") + "_pb2")
    p = descriptor_pb2.FileDescriptorProto()
    mod.DESCRIPTOR.CopyToProto(p)
    return p


def type_ref(f, pkg):
    if f.type in (11, 14):  # message, enum
        name = f.type_name.lstrip(".")
        if name.startswith(pkg + "."):
            return name[len(pkg) + 1 :]
        return name
    return TYPES[f.type]


def field_line(f, pkg, maps):
    opts = " [deprecated = true]" if f.options.deprecated else ""
    if f.type == 11 and f.type_name in maps:
        k, v = maps[f.type_name]
        return "map<%s, %s> %s = %d%s;" % (type_ref(k, pkg), type_ref(v, pkg), f.name, f.number, opts)
    label = "repeated " if f.label == 3 else ("optional " if f.proto3_optional else "")
    return "%s%s %s = %d%s;" % (label, type_ref(f, pkg), f.name, f.number, opts)


def reserved(d, out, ind):
    for r in d.reserved_range:
        if r.end - r.start == 1:
            out.append("%sreserved %d;" % (ind, r.start))
        else:
            out.append("%sreserved %d to %d;" % (ind, r.start, r.end - 1))


def enum(e, out, ind):
    out.append("%senum %s {" % (ind, e.name))
    for v in e.value:
        out.append("%s  %s = %d;" % (ind, v.name, v.number))
    out.append("%s}" % ind)


def message(d, full, pkg, maps, out, ind):
    out.append("%smessage %s {" % (ind, d.name))
    if d.options.deprecated:
        out.append("%s  option deprecated = true;" % ind)
    reserved(d, out, ind + "  ")
    for e in d.enum_type:
        enum(e, out, ind + "  ")
    for n in d.nested_type:
        if not n.options.map_entry:
            message(n, full + "." + n.name, pkg, maps, out, ind + "  ")
    done = set()
    for f in d.field:
        if f.HasField("oneof_index") and not f.proto3_optional:
            if f.oneof_index in done:
                continue
            done.add(f.oneof_index)
            out.append("%s  oneof %s {" % (ind, d.oneof_decl[f.oneof_index].name))
            for g in d.field:
                if g.HasField("oneof_index") and g.oneof_index == f.oneof_index:
                    out.append("%s    %s" % (ind, field_line(g, pkg, maps)))
            out.append("%s  }" % ind)
        else:
            out.append("%s  %s" % (ind, field_line(f, pkg, maps)))
    out.append("%s}" % ind)


def collect_maps(ds, prefix, maps):
    for d in ds:
        full = prefix + "." + d.name
        if d.options.map_entry:
            maps[full] = (d.field[0], d.field[1])
        collect_maps(d.nested_type, full, maps)


def main():
    p = load(sys.argv[1])
    header = sys.argv[2] if len(sys.argv) > 2 else ""
    maps = {}
    collect_maps(p.message_type, "." + p.package, maps)
    out = [("// " + l).rstrip() for l in header.splitlines()]
    out += ["", 'syntax = "proto3";', "", "package %s;" % p.package, ""]
    for dep in p.dependency:
        out.append('import "%s";' % dep)
    out += ["", 'option go_package = "%s";' % GO_PACKAGES[p.package]]
    for e in p.enum_type:
        out.append("")
        enum(e, out, "")
    for d in p.message_type:
        out.append("")
        message(d, "." + p.package + "." + d.name, p.package, maps, out, "")
    print("\n".join(out))


if __name__ == "__main__":
    main()
