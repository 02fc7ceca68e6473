"""The package's shape: no import circle, state written only in session.py, every
limit a setting, every error in the one tree."""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path

import classcord
from classcord import errors
from classcord.protocol import REQUEST_CLASSES, REQUEST_TYPES
from classcord.session import HANDLERS, TRANSITIONS, Event, State

PACKAGE = Path(classcord.__file__).resolve().parent


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Every classcord module ``path`` imports, at any depth (lazy and typing-only
    imports included: a circle through them is still a circle to a reader)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("classcord"):
            found.add(node.module)
            for alias in node.names:
                candidate = f"{node.module}.{alias.name}"
                if (PACKAGE.parent / candidate.replace(".", "/")).with_suffix(".py").exists():
                    found.add(candidate)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("classcord")}
    return found


def import_graph() -> dict[str, set[str]]:
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        # "from classcord import texts" names the package: count the module.
        targets = imports_of(path) & set(modules)
        graph[name] = {t for t in targets if t != name and t != "classcord"}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    done: set[str] = set()

    def visit(node: str, path: list[str]) -> list[str] | None:
        if node in path:
            return [*path[path.index(node) :], node]
        if node in done:
            return None
        for target in sorted(graph.get(node, ())):
            cycle = visit(target, [*path, node])
            if cycle:
                return cycle
        done.add(node)
        return None

    for start in sorted(graph):
        cycle = visit(start, [])
        if cycle:
            return cycle
    return None


def test_the_package_has_no_import_circle() -> None:
    assert find_cycle(import_graph()) is None


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_hub_knows_sessions_only_as_members() -> None:
    assert "classcord.session" not in import_graph()["classcord.hub"]


def test_only_session_py_writes_a_session_state() -> None:
    writers = []
    for path in PACKAGE.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        if re.search(r"\.(_?state)\s*=\s*State\.", text) and path.name != "session.py":
            writers.append(path.name)
    assert writers == []


def test_every_state_is_reachable_and_every_state_can_close() -> None:
    reached, frontier = {State.ANONYMOUS}, [State.ANONYMOUS]
    while frontier:
        origin = frontier.pop()
        for (start, _), target in TRANSITIONS.items():
            if start is origin and target not in reached:
                reached.add(target)
                frontier.append(target)
    assert reached == set(State)
    for state in State:
        assert TRANSITIONS[(state, Event.DISCONNECTED)] is State.CLOSING


def test_the_handler_table_is_the_request_registry() -> None:
    assert set(HANDLERS) == REQUEST_CLASSES
    registered = {cls for entry in REQUEST_TYPES for cls in entry.classes}
    assert registered <= set(HANDLERS)
    for cls, row in HANDLERS.items():
        assert len(row) == 3, cls
        for cell in row:
            assert cell is None or callable(cell), (cls, cell)
            if cell is not None:
                # Each handler takes the request class of its row.
                hint = inspect.signature(cell).parameters["request"].annotation
                assert hint == cls.__name__, (cls, cell, hint)


def is_number(node: ast.expr) -> bool:
    """A literal number, or arithmetic on literal numbers (``128 * 1024``)."""
    if isinstance(node, ast.Constant):
        return isinstance(node.value, (int, float)) and not isinstance(node.value, bool)
    if isinstance(node, ast.BinOp):
        return is_number(node.left) and is_number(node.right)
    return False


def test_no_limit_is_left_as_a_module_constant() -> None:
    """Upper-case numeric constants in the server's modules are limits in disguise;
    the few that are not (wire formats, counters' sampling) are listed here."""
    allowed = {
        ("accounts.py", "SALT_BYTES"),  # hash format
        ("accounts.py", "KEY_BYTES"),  # hash format
        ("accounts.py", "MAX_NICENESS"),  # the kernel's bound
        ("server.py", "RATE_SAMPLE_SECONDS"),  # the stats figure, not a limit
        ("server.py", "RATE_SAMPLES_KEPT"),
        ("storage.py", "SCHEMA_VERSION"),
        ("cli.py", "EXIT_USAGE"),  # the exit code of a usage mistake
        ("moderation_service.py", "EXPIRY_CHECK_SECONDS"),  # a wake-up, not a limit
    }
    core = [p for p in PACKAGE.glob("*.py")]
    found = set()
    for path in core:
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            target = None
            if isinstance(node, ast.Assign) and len(node.targets) == 1:
                target, value = node.targets[0], node.value
            elif isinstance(node, ast.AnnAssign) and node.value is not None:
                target, value = node.target, node.value
            if isinstance(target, ast.Name) and target.id.isupper() and is_number(value):
                found.add((path.name, target.id))
    assert found - allowed == set()


def test_every_error_class_of_the_package_is_in_the_tree() -> None:
    outside = []
    for path in PACKAGE.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            is_error = isinstance(node, ast.ClassDef) and node.name.endswith(("Error", "Exception"))
            if is_error and path.name != "errors.py":
                outside.append(f"{path.name}:{node.name}")
    assert outside == []
    for name, cls in vars(errors).items():
        if isinstance(cls, type) and issubclass(cls, Exception):
            assert issubclass(cls, errors.ClassCordError), name
            assert name in errors.__doc__, f"{name} is not drawn in the tree"
