# Protobuf targets, included by the Makefile (owned by the serving engineer).
# Everything they need is installed under .cache/ by scripts/genproto.sh.

.PHONY: proto verify-proto

## proto: regenerate api/featured/v1 and api/feast/... *.pb.go from the .proto files
proto:
	bash scripts/genproto.sh

## verify-proto: fail if the committed generated code differs from a fresh generation
verify-proto:
	bash scripts/genproto.sh --verify
