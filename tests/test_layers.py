"""The import graph: front ends (commands, bench) -> the public API -> the package modules.

Imports are read with `ast`, including those inside functions (the package imports heavy modules
late), so a lazy import cannot hide a wrong direction.
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "paulow"
COMMANDS = {p.stem for p in (PACKAGE / "commands").glob("*.py")} - {"__init__", "common"}
FRONT_ENDS = {"paulow.cli", "paulow.__main__", "paulow.demo"}


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(path: Path, runtime_only: bool = False) -> set[str]:
    """Absolute names of the modules a file imports (`from . import x` counted as `pkg.x`);
    `runtime_only`: without the `if TYPE_CHECKING:` blocks (names for the type checker only)."""
    here = module_name(path).split(".")
    package = here if path.name == "__init__.py" else here[:-1]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    if runtime_only:
        for node in ast.walk(tree):
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                node.body = [ast.Pass()]
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            stem = ".".join(base + ([node.module] if node.module else []))
            names.add(stem)
            names |= {f"{stem}.{a.name}" for a in node.names}
    return names


def test_the_helper_resolves_relative_imports():
    found = imported(PACKAGE / "commands" / "evaluate.py")
    assert {"paulow.api", "paulow.report", "paulow.errors"} <= found
    assert imported(PACKAGE / "api" / "model.py") >= {"paulow.predict", "paulow.errors"}


def test_no_command_imports_another_command_or_the_cli():
    for path in (PACKAGE / "commands").glob("*.py"):
        wrong = {
            n
            for n in imported(path)
            if n in {f"paulow.commands.{c}" for c in COMMANDS - {path.stem}} or n.startswith("paulow.cli")
        }
        assert not wrong, f"{path.name} imports {sorted(wrong)}"


def test_the_api_and_the_package_import_no_front_end():
    for path in PACKAGE.rglob("*.py"):
        name = module_name(path)
        if name.startswith("paulow.commands") or name in FRONT_ENDS:
            continue
        wrong = {n for n in imported(path) if n.startswith("paulow.commands") or n in FRONT_ENDS}
        assert not wrong, f"{name} imports the front end(s) {sorted(wrong)}"


def test_the_bench_goes_through_the_api_or_the_package_not_the_commands():
    for path in (REPO / "bench").glob("*.py"):
        wrong = {n for n in imported(path) if n.startswith(("paulow.commands", "paulow.cli"))}
        assert not wrong, f"bench/{path.name} imports {sorted(wrong)}"


# What a front end may import from the package: the door, the workspace, the errors and the prompts;
# a command also the table/CSV/JSON printing helpers and the commands' own shared module.
FRONT_END_MAY_IMPORT = ("paulow.api", "paulow.workspace", "paulow.errors", "paulow.prompts")
COMMAND_MAY_IMPORT = (*FRONT_END_MAY_IMPORT, "paulow.report", "paulow.commands.common")


def outside(names: set[str], allowed: tuple[str, ...]) -> set[str]:
    """The package names in `names` not in or under an allowed module (`paulow.__version__` is fine)."""
    return {
        n
        for n in names
        if n.startswith("paulow")
        and n not in ("paulow", "paulow.__version__")
        and not any(n == a or n.startswith(a + ".") for a in allowed)
    }


def test_outside_reads_modules_and_their_names():
    assert outside({"paulow.api", "paulow.api.Model", "paulow", "numpy"}, FRONT_END_MAY_IMPORT) == set()
    assert outside({"paulow.distributed", "paulow.apiary"}, FRONT_END_MAY_IMPORT) == {
        "paulow.distributed",
        "paulow.apiary",
    }


def test_the_commands_and_the_demo_go_through_the_api_only():
    paths = [*(PACKAGE / "commands").glob("*.py"), PACKAGE / "demo.py"]
    for path in paths:
        wrong = outside(imported(path), COMMAND_MAY_IMPORT)
        assert not wrong, f"{path.relative_to(REPO)} imports {sorted(wrong)}: go through paulow.api"


def test_napari_goes_through_the_api_only():
    for path in (PACKAGE / "napari").glob("*.py"):
        wrong = outside(imported(path), (*FRONT_END_MAY_IMPORT, "paulow.napari"))
        assert not wrong, f"{path.relative_to(REPO)} imports {sorted(wrong)}: go through paulow.api"


def test_the_bench_goes_through_the_api_but_for_the_named_exceptions():
    from bench_layer_exceptions import BENCH_EXCEPTIONS

    for path in (REPO / "bench").glob("*.py"):
        key = f"bench/{path.name}"
        wrong = outside(imported(path), FRONT_END_MAY_IMPORT + BENCH_EXCEPTIONS.get(key, ()))
        assert not wrong, (
            f"{key} imports {sorted(wrong)}: go through paulow.api or name it in bench_layer_exceptions.py"
        )


def test_every_bench_exception_is_used():
    from bench_layer_exceptions import BENCH_EXCEPTIONS

    for key, modules in BENCH_EXCEPTIONS.items():
        names = imported(REPO / key)
        unused = [m for m in modules if not any(n == m or n.startswith(m + ".") for n in names)]
        assert not unused, f"{key} no longer imports {unused}: drop them from bench_layer_exceptions.py"


def test_the_package_below_the_api_does_not_import_it():
    for path in PACKAGE.rglob("*.py"):
        name = module_name(path)
        if name.startswith(("paulow.api", "paulow.commands", "paulow.napari")) or name in FRONT_ENDS | {
            "paulow"
        }:
            continue
        if name.startswith("paulow.cli"):
            continue
        wrong = {n for n in imported(path) if n == "paulow.api" or n.startswith("paulow.api.")}
        assert not wrong, f"{name} imports the API {sorted(wrong)}: the package sits below it"


def test_no_import_cycle_between_modules():
    """Lazy imports included: a cycle that only works because one side imports late is still one."""
    paths = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    packages = {n for n, p in paths.items() if p.name == "__init__.py"}
    graph = {
        n: {m for m in imported(p, runtime_only=True) if m in paths and m != n and m not in packages}
        for n, p in paths.items()
    }
    done: set[str] = set()

    def visit(node: str, trail: list[str]) -> None:
        if node in trail:
            raise AssertionError("import cycle: " + " -> ".join(trail[trail.index(node) :] + [node]))
        if node in done:
            return
        for nxt in sorted(graph[node]):
            visit(nxt, [*trail, node])
        done.add(node)

    for name in sorted(graph):
        visit(name, [])
