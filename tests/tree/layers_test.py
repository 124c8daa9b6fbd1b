#!/usr/bin/env python3
"""The source tree's layering: every quoted include is written from the repository root (or
is the engine's public spriteforge/engine/ path, or generated), none points from a lower
layer to a higher one, and headers include each other without cycles.
Usage: layers_test.py SOURCE_DIR"""
import os
import re
import sys

ROOT = sys.argv[1] if len(sys.argv) > 1 else "."
CODE = ("common", "worker", "coordinator", "client", "tests")
EXT = (".h", ".cc", ".cu")
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)
PUBLIC = "spriteforge/engine/"
PUBLIC_DIR = "worker/engine/include/"
GENERATED = ("spriteforge/v1/",)  # protoc's output
# Third-party headers written with quotes.
THIRD_PARTY = ("absl/", "spdlog/", "yaml-cpp/", "re2/", "google/", "grpcpp/", "gtest/", "gmock/", "nlohmann/", "httplib", "CLI/", "prometheus/", "libpq", "torch/", "ATen/", "c10/", "cuda")

# What each folder may not include (prefixes of root-relative paths).
FORBIDDEN = [
    ("common/", ("worker/", "coordinator/", "client/", PUBLIC)),
    ("worker/engine/", ("worker/batch", "worker/blob", "worker/sprite", "worker/thread", "worker/worker",
                        "coordinator/", "client/")),
    ("worker/", ("coordinator/", "client/")),
    # The coordinator's layers: transport/ -> core/ -> scheduling/, store/; nothing points back
    # up, and the transports do not lean on each other (access/ serves gRPC and HTTP alike).
    ("coordinator/store/", ("coordinator/core/", "coordinator/transport/", "coordinator/app/", "coordinator/tools/",
                            "coordinator/scheduling/", "worker/", "client/", PUBLIC)),
    ("coordinator/scheduling/", ("coordinator/core/", "coordinator/transport/", "coordinator/app/",
                                 "coordinator/tools/", "worker/", "client/", PUBLIC)),
    ("coordinator/core/", ("coordinator/transport/", "coordinator/app/", "coordinator/tools/", "worker/", "client/",
                           PUBLIC)),
    ("coordinator/transport/access/", ("coordinator/transport/grpc/", "coordinator/transport/http/",
                                       "coordinator/transport/standby", "coordinator/app/", "coordinator/tools/",
                                       "worker/", "client/", PUBLIC)),
    ("coordinator/transport/grpc/", ("coordinator/transport/http/", "coordinator/app/", "coordinator/tools/",
                                     "worker/", "client/", PUBLIC)),
    ("coordinator/transport/http/", ("coordinator/transport/grpc/", "coordinator/app/", "coordinator/tools/",
                                     "worker/", "client/", PUBLIC)),
    ("coordinator/transport/", ("coordinator/app/", "coordinator/tools/", "worker/", "client/", PUBLIC)),
    ("coordinator/", ("worker/", "client/", PUBLIC)),
    ("client/", ("worker/", "coordinator/", PUBLIC)),
]


def sources():
    for top in CODE:
        for folder, _, names in os.walk(os.path.join(ROOT, top)):
            for name in names:
                if name.endswith(EXT):
                    yield os.path.relpath(os.path.join(folder, name), ROOT)


def resolve(include):
    if include.startswith(PUBLIC):
        return PUBLIC_DIR + include
    return include


def main():
    problems, graph = [], {}
    for path in sources():
        text = open(os.path.join(ROOT, path), encoding="utf-8", errors="replace").read()
        targets = []
        for include in INCLUDE.findall(text):
            if include.startswith(GENERATED) or include.startswith(THIRD_PARTY):
                continue
            target = resolve(include)
            if not os.path.isfile(os.path.join(ROOT, target)):
                problems.append(f"{path}: \"{include}\" is not a path from the repository root")
                continue
            targets.append(target)
            for folder, banned in FORBIDDEN:
                if path.startswith(folder):
                    if any(include.startswith(b) for b in banned):
                        problems.append(f"{path}: a {folder} file includes \"{include}\" from a higher layer")
                    break
        graph[path] = targets
    # Cycles among headers: depth-first search with colours.
    state = {}

    def visit(node, stack):
        state[node] = 1
        stack.append(node)
        for nxt in graph.get(node, []):
            if state.get(nxt) == 1:
                cycle = stack[stack.index(nxt):] + [nxt]
                problems.append("include cycle: " + " -> ".join(cycle))
            elif nxt not in state:
                visit(nxt, stack)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [])
    for p in problems:
        print(p)
    print(f"layers: {len(graph)} files, {sum(len(t) for t in graph.values())} includes, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
