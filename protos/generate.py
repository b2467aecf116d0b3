"""Regenerate the Python code for every .proto in this buf module.

    python protos/generate.py          # write protos/l2node/<pkg>/v1/*_pb2*.py(i), beside each .proto
    python protos/generate.py --check  # exit 1 if the committed code is stale

The generator is grpcio-tools, pinned in pyproject.toml, so the output is reproducible. The code
is the Python package ``protos.l2node.<pkg>.v1``: the bottom layer, importing nothing of ours, so
every layer above (the runtime, the services, the node) may use it without a cycle. The one
absolute import protoc writes (``_pb2_grpc`` -> its ``_pb2``) is made relative, so the package
does not depend on where it sits.
`buf lint protos` checks the sources themselves.
"""

from __future__ import annotations

import argparse
import filecmp
import pathlib
import re
import subprocess
import sys
import tempfile

import grpc_tools

ROOT = pathlib.Path(__file__).resolve().parent.parent
PROTOS = ROOT / "protos"
OUT = PROTOS  # proto package l2node.x.v1 lands in protos/l2node/x/v1, beside its source
_ABSOLUTE = re.compile(r"^from l2node\.[\w.]+ import (\w+_pb2) as ", re.M)


def generate(out: pathlib.Path) -> list[pathlib.Path]:
    sources = sorted(p.relative_to(PROTOS) for p in PROTOS.rglob("*.proto"))
    well_known = pathlib.Path(grpc_tools.__file__).parent / "_proto"
    cmd = [
        sys.executable, "-m", "grpc_tools.protoc", f"-I{PROTOS}", f"-I{well_known}",
        f"--python_out={out}", f"--pyi_out={out}", f"--grpc_python_out={out}",
        *map(str, sources),
    ]
    subprocess.run(cmd, check=True, cwd=PROTOS)
    generated = sorted(p.relative_to(out) for p in out.rglob("l2node/**/*_pb2*.py*"))
    for rel in generated:
        if rel.name.endswith("_pb2_grpc.py"):
            path = out / rel
            path.write_text(_ABSOLUTE.sub(r"from . import \1 as ", path.read_text()))
    for rel in {p.parent for p in generated}:
        for pkg in [rel, *rel.parents]:
            if str(pkg) != "." and not (out / pkg / "__init__.py").exists():
                (out / pkg / "__init__.py").write_text("")
    return generated


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true", help="compare instead of writing")
    args = ap.parse_args()
    if not args.check:
        generate(OUT)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        fresh = generate(pathlib.Path(tmp))
        committed = sorted(p.relative_to(OUT) for p in OUT.rglob("l2node/**/*_pb2*.py*"))
        stale = [str(p) for p in fresh if not (OUT / p).exists()
                 or not filecmp.cmp(pathlib.Path(tmp) / p, OUT / p, shallow=False)]
        stale += [f"{p} (no source)" for p in committed if p not in fresh]
        if stale:
            print("generated protobuf code is stale; run: python protos/generate.py", file=sys.stderr)
            print("\n".join(f"  {s}" for s in stale), file=sys.stderr)
            return 1
    print(f"generated code is current ({len(fresh)} files)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
