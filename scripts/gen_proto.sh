#!/usr/bin/env bash
# Regenerate the Python modules for the wire contract. Run after editing
# proto/murmur/v1/*.proto and commit the result; tests/test_proto_fresh.py fails
# when the committed modules are stale.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-proto}"
python -m grpc_tools.protoc -Iproto \
  --python_out="$out" --pyi_out="$out" --grpc_python_out="$out" \
  proto/murmur/v1/companion.proto
