"""The Python modules of contactbridge's gRPC API, generated at run time from the
bridge's schemas (schemas/contactbridge/v1/*.proto) with grpcio-tools.

Shared by examples/python/resolve_call.py and examples/kamailio/{sidecar,resolve_grpc}.py:

    stubs = cb_stubs.load(out_dir)   # generates into out_dir and imports from there
    stubs.pb.ResolveCallRequest(...); stubs.rpc.CallHandlingStub(channel); stubs.types.Status
"""

import importlib
import pathlib
import sys
import types as _types
from importlib.resources import files

SCHEMAS = pathlib.Path(__file__).resolve().parents[2] / "schemas"


def generate(out_dir: pathlib.Path) -> None:
    """Compiles the schemas into *_pb2.py and *_pb2_grpc.py modules in out_dir."""
    from grpc_tools import protoc

    well_known = str(files("grpc_tools") / "_proto")
    protos = sorted(str(p.relative_to(SCHEMAS)) for p in (SCHEMAS / "contactbridge" / "v1").glob("*.proto"))
    args = [
        "grpc_tools.protoc",
        f"-I{SCHEMAS}",
        f"-I{well_known}",
        f"--python_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        *protos,
    ]
    if protoc.main(args) != 0:
        raise SystemExit("generating the Python stubs from schemas/ failed")


def load(out_dir) -> _types.SimpleNamespace:
    """Generates the stubs into out_dir and imports them: .pb (call_handling_pb2),
    .rpc (call_handling_pb2_grpc), .types (types_pb2), .admin (admin_pb2) and
    .admin_rpc (admin_pb2_grpc)."""
    generate(pathlib.Path(out_dir))
    sys.path.insert(0, str(out_dir))
    return _types.SimpleNamespace(
        pb=importlib.import_module("contactbridge.v1.call_handling_pb2"),
        rpc=importlib.import_module("contactbridge.v1.call_handling_pb2_grpc"),
        types=importlib.import_module("contactbridge.v1.types_pb2"),
        admin=importlib.import_module("contactbridge.v1.admin_pb2"),
        admin_rpc=importlib.import_module("contactbridge.v1.admin_pb2_grpc"),
    )
