"""No import cycle among chatapi's modules: the graph is read from the source (every import
statement, those inside functions too, relative ones resolved), so an import deferred into a
function to dodge a cycle at load time still counts as the cycle it is."""
import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "chatapi"


def module_names():
    """{dotted module name: source path}; a package is named by its __init__.py."""
    names = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        names[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return names


def imported(module, path, modules):
    """The chatapi modules `module` imports. `from p import n` imports p.n when that is a
    module, else p; importing p.q also runs p's __init__, but that is how packages load, not
    a dependency of the importer, so it is not an edge."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names if alias.name in modules)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            for alias in node.names:
                if f"{base}.{alias.name}" in modules:
                    yield f"{base}.{alias.name}"
                elif base in modules:
                    yield base


def import_graph():
    modules = module_names()
    return {module: sorted(set(imported(module, path, modules)) - {module})
            for module, path in modules.items()}


def strongly_connected(graph):
    """Tarjan's algorithm: the sets of modules that reach each other."""
    index, low, stack, on_stack, components = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = set()
            while node not in component:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
            components.append(component)

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return components


def a_cycle_in(component, graph):
    """One shortest cycle through the component's first module, as a list that closes."""
    start = min(component)
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for target in graph[node]:
                if target == start:
                    return paths[node] + [start]
                if target in component and target not in paths:
                    paths[target] = paths[node] + [target]
                    following.append(target)
        frontier = following
    raise AssertionError(f"{component} holds no cycle")


def cycles(graph):
    """One cycle per set of modules that import each other, and the whole set."""
    return [(a_cycle_in(component, graph), sorted(component))
            for component in strongly_connected(graph) if len(component) > 1]


def test_the_graph_sees_relative_and_function_level_imports():
    graph = import_graph()

    assert "chatapi.errors" in graph["chatapi.tools.netguard"]
    assert "chatapi.strict_json" in graph["chatapi.tools.registry"]
    assert "chatapi.tools.compute_pool" in graph["chatapi.factory"]
    assert "chatapi.factory" in graph["chatapi"]


def test_cycles_are_found_and_shown():
    graph = {"a": ["b"], "b": ["c"], "c": ["a", "d"], "d": []}

    assert cycles(graph) == [(["a", "b", "c", "a"], ["a", "b", "c"])]


def test_no_module_of_chatapi_imports_itself_back():
    found = cycles(import_graph())

    assert not found, "import cycles:\n" + "\n".join(
        f"{' -> '.join(cycle)}   (entangled: {', '.join(members)})" for cycle, members in found)
