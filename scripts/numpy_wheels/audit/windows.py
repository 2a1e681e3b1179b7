"""Windows wheels: machine type against the tag, and each import resolved as the
Windows loader does for an extension module (its directory, os.add_dll_directory
paths found in the wheel's Python code, DLLs the code preloads, API sets, system
DLLs, Python's own runtimes)."""

from __future__ import annotations

import ast
import fnmatch
import posixpath
import re

from . import policy
from .chains import Found, Node, roots, simulate
from .report import Binary, WheelReport, installed_path


def check_windows(report: WheelReport, binaries, members, platforms, texts) -> None:
    tables = policy.tables()
    system = {n.lower() for n in tables["windows_system_dlls"]}
    runtime = {n.lower() for n in tables["windows_python_runtime"]}
    redist = {n.lower() for n in tables["windows_vc_redist"]}
    api_sets = tuple(tables["windows_api_set_prefixes"])
    machines = tables["windows_machines"]
    for platform in platforms:
        if platform not in machines:
            report.fail(f"{report.name}: unknown platform tag {platform}")
            continue
        for binary in binaries:
            if binary.machine != machines[platform]:
                report.fail(
                    f"{binary.path}: machine type {binary.archs[0]}, the tag says {platform}"
                )
    directories, preloaded = _dll_search_additions(texts, members)
    report.dll_directories = sorted(directories)
    files = {b.installed.lower(): b for b in binaries}
    by_name = {posixpath.basename(b.path).lower(): b for b in binaries}

    def resolve(node: Node, library: str, kind: str, loaded) -> Found:
        lower = library.lower()
        if lower.startswith(api_sets):
            return Found("system", "API set (resolved by the loader to a system DLL)")
        if lower in loaded:
            return Found(loaded[lower].binary.path, "a module of that name is already loaded")
        for place, code in preloaded.items():
            if posixpath.basename(place).lower() == lower and place.lower() in files:
                return Found(
                    files[place.lower()].path, f"preloaded by {code}", files[place.lower()]
                )
        # LOAD_LIBRARY_SEARCH_DLL_LOAD_DIR: the directory of the module Python loads,
        # then the application (python.exe) directory, added directories, System32.
        root = list(node.chain())[-1].binary
        places = [(posixpath.dirname(root.installed), f"the directory of {root.path}")]
        places += [(d, f"os.add_dll_directory in {code}") for d, code in directories.items()]
        for directory, why in places:
            found = files.get(posixpath.join(directory.lower(), lower))
            if found is not None:
                return Found(found.path, why, found)
        if re.match(r"^(python[23]\d*t?(_d)?|libpypy[23][\d.]*-c)\.dll$", lower):
            return Found("python", "the Python DLL")  # CPython's, or PyPy's libpypy3.X-c.dll
        if lower in runtime:
            return Found("python runtime", "ships with Python")
        if lower in system:
            return Found("system", "Windows system DLL")
        what = "delay-imports" if kind == "delay" else "imports"
        if lower in redist:
            return Found(None, "not found", severity="warn", reason=(
                f"{what} {library}: not bundled; part of the Visual C++ runtime, "
                "common but not guaranteed on Windows"))  # fmt: skip
        elsewhere = by_name.get(lower)
        if elsewhere is not None:
            tried = ", ".join(dict.fromkeys(d or "." for d, _ in places))
            reason = (f"{what} {library}: bundled as {elsewhere.path} but not in any "
                      f"directory the loader searches ({tried})")  # fmt: skip
        else:
            reason = (f"{what} {library}: not bundled, not a Windows system DLL "
                      "or a runtime that ships with Python")  # fmt: skip
        # A delay-loaded DLL is loaded on first use: missing, only that use fails.
        return Found(None, "not found", severity="warn" if kind == "delay" else "fail",
                      reason=reason)  # fmt: skip

    def names_of(binary: Binary) -> set[str]:
        return {posixpath.basename(binary.path).lower()}

    starts = roots(binaries, str.lower)
    starts += [(files[m.lower()], False) for m in preloaded if m.lower() in files]
    simulate(report, binaries, starts, resolve, names_of)


def _dll_search_additions(texts: dict[str, bytes], members) -> tuple[dict, dict]:
    """Directories the wheel's Python code adds with os.add_dll_directory, and DLLs it
    loads itself (ctypes.WinDLL/CDLL, LoadLibrary*), each with the file that does it
    (paths as installed, relative to site-packages)."""
    directories: dict[str, str] = {}
    preloaded: dict[str, str] = {}
    packages = {p.split("/", 1)[0] for p in map(installed_path, members) if "/" in p}
    for member, raw in sorted(texts.items()):
        if not member.endswith(".py") or not re.search(
            rb"add_dll_directory|WinDLL|CDLL|LoadLibrary", raw
        ):
            continue
        try:
            tree = ast.parse(raw, filename=member)
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            continue  # not code Python would run either
        values = _PathEvaluator(member, packages)
        for call in values.calls(tree):
            name, arg = call
            if arg is None:
                continue
            if name == "add_dll_directory":
                directories.setdefault(arg, member)
            else:
                for m in map(installed_path, members):
                    if fnmatch.fnmatchcase(m.lower(), arg.lower()):
                        preloaded.setdefault(m, member)
    return directories, preloaded


class _PathEvaluator:
    """Evaluates, without running it, the paths a module's code builds from its own
    location (``os.path.join(os.path.dirname(__file__), os.pardir, 'x.libs')``):
    names assigned earlier, walrus targets, ``for x in glob.glob(...)`` and
    ``for x in pkg.__path__`` included, os.path and pathlib spellings alike.
    Values are installed paths (globs for glob results); None is unknown."""

    MAX_DEPTH = 40

    def __init__(self, member: str, packages: set[str]) -> None:
        self.env: dict[str, str | None] = {"__file__": installed_path(member)}
        self.packages = packages  # top-level directories of the installed wheel

    def calls(self, tree: ast.AST):
        """(function name, evaluated first argument) of every DLL-related call, in order."""
        for node in self._walk(tree):
            if isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None:
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for target in targets:
                    if isinstance(target, ast.Name):
                        self.env[target.id] = self.value(node.value)
            elif isinstance(node, ast.NamedExpr):
                self.env[node.target.id] = self.value(node.value)
            elif isinstance(node, ast.For) and isinstance(node.target, ast.Name):
                self.env[node.target.id] = self._glob(node.iter) or self.value(node.iter)
            elif isinstance(node, ast.Call):
                name = _call_name(node.func)
                dll = name in ("add_dll_directory", "WinDLL", "CDLL", "LoadLibrary")
                if (dll or name.startswith("LoadLibrary")) and node.args:
                    yield name, self.value(node.args[0])

    def _walk(self, tree: ast.AST):
        # In source order, walrus values before the calls that use them.
        stack = [tree]
        while stack:
            node = stack.pop()
            yield node
            stack.extend(reversed(list(ast.iter_child_nodes(node))))

    def _glob(self, node: ast.AST) -> str | None:
        if isinstance(node, ast.Call) and _call_name(node.func) in ("glob", "iglob") and node.args:
            return self.value(node.args[0])
        return None

    def value(self, node: ast.AST, depth: int = 0) -> str | None:
        if depth > self.MAX_DEPTH:
            return None
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return node.value
        if isinstance(node, ast.Name):
            return self.env.get(node.id)
        if isinstance(node, ast.NamedExpr):
            self.env[node.target.id] = self.value(node.value, depth + 1)
            return self.env[node.target.id]
        if isinstance(node, ast.Attribute) and node.attr == "pardir":
            return ".."
        if isinstance(node, ast.Attribute) and node.attr == "curdir":
            return "."
        if (  # pkg.__path__ of a top-level package of the wheel: its directory (pywin32)
            isinstance(node, ast.Attribute)
            and node.attr == "__path__"
            and isinstance(node.value, ast.Name)
            and node.value.id in self.packages
        ):
            return node.value.id
        if isinstance(node, ast.Attribute) and node.attr == "parent":  # pathlib
            inner = self.value(node.value, depth + 1)
            return None if inner is None else posixpath.dirname(inner)
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):  # Path / "x"
            left, right = self.value(node.left, depth + 1), self.value(node.right, depth + 1)
            return None if left is None or right is None else posixpath.join(left, right)
        if (  # os.path.split(p)[0] is the directory, [1] the name (pygame)
            isinstance(node, ast.Subscript)
            and isinstance(node.value, ast.Call)
            and ast.unparse(node.value.func) in ("os.path.split", "path.split", "split")
            and isinstance(node.slice, ast.Constant)
            and node.slice.value in (0, 1, -1)
            and len(node.value.args) == 1
        ):
            inner = self.value(node.value.args[0], depth + 1)
            if inner is None:
                return None
            return posixpath.dirname(inner) if node.slice.value == 0 else posixpath.basename(inner)
        if isinstance(node, ast.Call):
            name = _call_name(node.func)
            args = [self.value(a, depth + 1) for a in node.args]
            if any(a is None for a in args) or node.keywords:
                return None
            if name == "join" and args:
                return posixpath.join(*[a.replace("\\", "/") for a in args])
            if name == "dirname" and len(args) == 1:
                return posixpath.dirname(args[0])
            if (
                name in ("abspath", "normpath", "realpath", "str", "fspath", "Path", "PurePath")
                and len(args) == 1
            ):
                return posixpath.normpath(args[0])
            if (
                name in ("resolve", "absolute")
                and not args
                and isinstance(node.func, ast.Attribute)
            ):
                return self.value(node.func.value, depth + 1)  # Path(...).resolve()
        return None


def _call_name(func: ast.AST) -> str:
    if isinstance(func, ast.Attribute):
        return func.attr
    return func.id if isinstance(func, ast.Name) else ""
