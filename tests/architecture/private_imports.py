"""An import-linter contract: nothing imports another package's ``_private`` module.

A leading underscore marks a module as its package's own business; what others may use is what
the package's ``__init__`` exports. For ``a.b._c`` (or anything under it), only modules inside
``a.b`` may import it. Dunder modules (``__init__``, ``__main__``) are not private. The contract
covers the root packages of the ``[tool.importlinter]`` table (production code): tests and
benchmarks may reach into privates to test them.
"""

from __future__ import annotations

from importlinter import Contract, ContractCheck, fields, output


def owner(module: str) -> str | None:
    """The package that owns ``module``'s first private component, or None if it is public."""
    parts = module.split(".")
    for i, part in enumerate(parts):
        if part.startswith("_") and not part.startswith("__"):
            return ".".join(parts[:i])
    return None


def allowed(importer: str, imported: str) -> bool:
    home = owner(imported)
    return home is None or importer == home or importer.startswith(home + ".")


class PrivateImports(Contract):
    """Options: ``ignore_imports`` (``importer -> imported`` lines, as in the built-in types)."""

    ignore_imports = fields.ListField(subfield=fields.StringField(), required=False)

    def check(self, graph, verbose: bool) -> ContractCheck:  # type: ignore[no-untyped-def]
        ignored = {tuple(s.strip() for s in str(line).split("->")) for line in (self.ignore_imports or [])}
        broken: list[tuple[str, str, int, str]] = []
        for importer in sorted(graph.modules):
            for imported in sorted(graph.find_modules_directly_imported_by(importer)):
                if allowed(importer, imported) or (importer, imported) in ignored:
                    continue
                for detail in graph.get_import_details(importer=importer, imported=imported) or [{}]:
                    broken.append((importer, imported, detail.get("line_number", 0), detail.get("line_contents", "")))
        return ContractCheck(kept=not broken, metadata={"broken": broken})

    def render_broken_contract(self, check: ContractCheck) -> None:
        for importer, imported, line, contents in check.metadata["broken"]:
            output.print_error(f"{importer} imports {imported}, private to {owner(imported)} (l.{line}: {contents})")
            output.new_line()
