"""Per-request facts (the language, the caller) are decided in the API layer and passed down as
arguments: no module of chatapi's services, tools or models reads Flask's request, neither
directly nor through something it calls, so each behaves the same in a request and in a
stream's reader greenlet (which has none). Checked on the source: every module-level function
or class of chatapi that refers to what reads the request reads it too, and so on."""
import ast
from pathlib import Path

import chatapi

PACKAGE = Path(chatapi.__file__).parent
BELOW_THE_API = ("chatapi.services", "chatapi.tools", "chatapi.models")
# What reads the request being served: Flask's request and its helpers, and
# flask-jwt-extended's view of the request's token.
READS_THE_REQUEST = {
    "flask.request", "flask.has_request_context", "flask.session",
    "flask_jwt_extended.current_user", "flask_jwt_extended.get_current_user",
    "flask_jwt_extended.get_jwt", "flask_jwt_extended.get_jwt_identity",
    "flask_jwt_extended.verify_jwt_in_request",
}


def module_name(path):
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def sources(root=PACKAGE):
    return {module_name(path): (ast.parse(path.read_text(), str(path)),
                                path.name == "__init__.py")
            for path in sorted(root.rglob("*.py"))}


def imported_names(module, tree, is_package):
    """Local name -> dotted name of what it is bound to, for every import in the module."""
    names = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname:
                    names[alias.asname] = alias.name
                else:
                    top = alias.name.split(".")[0]
                    names[top] = top
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = module.split(".")
                package = package[:len(package) - node.level + (1 if is_package else 0)]
                base = ".".join(package + ([node.module] if node.module else []))
            for alias in node.names:
                names[alias.asname or alias.name] = f"{base}.{alias.name}"
    return names


class Layers:
    def __init__(self, modules):
        self.modules = modules
        self.imports = {name: imported_names(name, tree, is_package)
                        for name, (tree, is_package) in modules.items()}
        self.defined = {name: {node.name for node in tree.body if isinstance(
                            node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))}
                        for name, (tree, _) in modules.items()}
        self.readers = self.find_readers()

    def canonical(self, dotted):
        """`chatapi.tools.Tool` is `chatapi.tools.registry.Tool` when the package imports it."""
        for _ in range(10):
            module, _, name = dotted.rpartition(".")
            target = self.imports.get(module, {}).get(name)
            if target is None:
                return dotted
            dotted = target
        return dotted

    def dotted(self, module, node):
        if isinstance(node, ast.Name):
            if node.id in self.imports[module]:
                return self.imports[module][node.id]
            if node.id in self.defined[module]:
                return f"{module}.{node.id}"
            return None
        if isinstance(node, ast.Attribute):
            inner = self.dotted(module, node.value)
            return inner and f"{inner}.{node.attr}"
        return None

    def referred(self, module, tree):
        """Every dotted name the code refers to, imports included."""
        found = set(self.imports[module].values()) if tree is self.modules[module][0] else set()
        for node in ast.walk(tree):
            if isinstance(node, (ast.Name, ast.Attribute)):
                dotted = self.dotted(module, node)
                if dotted:
                    found.add(self.canonical(dotted))
        return found

    def find_readers(self):
        readers = set(READS_THE_REQUEST)
        while True:
            more = {f"{module}.{node.name}"
                    for module, (tree, _) in self.modules.items() for node in tree.body
                    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
                    and self.referred(module, node) & readers} - readers
            if not more:
                return readers
            readers |= more

    def reading_below_the_api(self):
        return {module: sorted(self.referred(module, tree) & self.readers)
                for module, (tree, _) in self.modules.items()
                if module.startswith(BELOW_THE_API) and self.referred(module, tree) & self.readers}


def test_no_service_tool_or_model_reads_the_request():
    assert Layers(sources()).reading_below_the_api() == {}


def test_the_check_sees_a_request_read_through_other_modules(tmp_path):
    """What the check would catch: a service calling a helper that calls the error envelope,
    which reads the request's language."""
    layers = Layers(sources())
    assert {"chatapi.language.request_language",
            "chatapi.errors.error_response"} <= layers.readers
    helper = ast.parse("from ..errors import error_response\n"
                       "def refuse():\n    return error_response(400)\n")
    service = ast.parse("from . import refusals\n"
                        "def act():\n    refusals.refuse()\n")
    layers = Layers({**layers.modules, "chatapi.services.refusals": (helper, False),
                     "chatapi.services.acting": (service, False)})
    assert layers.reading_below_the_api() == {
        "chatapi.services.refusals": ["chatapi.errors.error_response"],
        "chatapi.services.acting": ["chatapi.services.refusals.refuse"]}
