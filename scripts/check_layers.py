#!/usr/bin/env python3
"""Checks the import rules of docs/architecture.md ("Layering"): which top-level module of
src/ may name which. Run by scripts/test.sh (CI); exit status 1 on a broken rule.

    python3 scripts/check_layers.py [SRC_DIR]          # check, print the arrows that break a rule
    python3 scripts/check_layers.py --report [SRC_DIR] # also print the module graph and circles
    python3 scripts/check_layers.py --write-table      # rewrite docs/architecture.md's file table

The check also compares the file table of docs/architecture.md (between the markers
`<!-- files:begin -->` and `<!-- files:end -->`) with the files of src/ and the first
sentence of each file's head comment (`//!`), so the table names every file and its role.

A file's references are the `crate::<module>` paths in its code (comments, doc comments and
string literals are left out; `#[cfg(test)]` modules count like any other code), and for
files of one module their `super::<file>` and `crate::<module>::<file>` paths (the circles
between files). RULES lists, for each module, the modules it may name.
"""
import os
import re
import sys
from collections import defaultdict

# Who may name whom, from the top of the house down (docs/architecture.md, "Layering").
# Every module's set lists the modules it may use; everything else is refused. The sets make
# a stack: nothing runs back up, and exec, the executor of compiled plans, names neither the
# resources (api) nor the observer (observe).
BELOW_KINDS = {"exec", "plan", "observe", "kafka", "format", "storage", "api", "facts", "redact"}
RULES = {
    "bin": {"operator", "cli", "report", "kinds"} | BELOW_KINDS,
    "operator": {"report", "kinds"} | BELOW_KINDS,
    "cli": {"report", "kinds"} | BELOW_KINDS,
    # renders the outcomes of runs (tables, summaries) for the CLI and the operator
    "report": {"kinds"} | BELOW_KINDS,
    # one home per kind's run: prepare (observe, validate, compile) and run (exec)
    "kinds": BELOW_KINDS,
    # runs compiled plans: no resources, no observation
    "exec": {"plan", "kafka", "format", "storage", "facts", "redact"},
    # pure: compiles validated input and observed facts; no I/O module
    "plan": {"api", "format", "facts", "redact"},
    # read-only I/O: what the cluster and the repository hold
    "observe": {"kafka", "format", "storage", "api", "facts", "redact"},
    "kafka": {"format", "facts", "redact"},
    # documents and their codecs (bytes and checks), read and written through storage
    "format": {"storage", "facts", "redact"},
    # objects by key; knows no document format. Uses api's plain settings types.
    "storage": {"api", "facts", "redact"},
    # the custom resources: a leaf
    "api": {"facts"},
    "facts": set(),
    "redact": set(),
}
# The one file-level circle kept (issue 17): SASL needs the connection to authenticate on,
# and the connection runs the SASL handshake.
ALLOWED_CIRCLES = [{"kafka/conn.rs", "kafka/sasl.rs"}]


def strip(code: str) -> str:
    """Removes comments and string literals (raw strings included) from Rust source."""
    out, i, n = [], 0, len(code)
    while i < n:
        c = code[i]
        if code.startswith("//", i):
            j = code.find("\n", i)
            i = n if j < 0 else j
        elif code.startswith("/*", i):
            j = code.find("*/", i + 2)
            i = n if j < 0 else j + 2
        elif c == "r" and re.match(r'r#*"', code[i:i + 10]) and (i == 0 or not (code[i - 1].isalnum() or code[i - 1] == "_")):
            m = re.match(r'r(#*)"', code[i:])
            end = '"' + m.group(1)
            j = code.find(end, i + len(m.group(0)))
            i = n if j < 0 else j + len(end)
            out.append('""')
        elif c == '"':
            j = i + 1
            while j < n and code[j] != '"':
                j += 2 if code[j] == "\\" else 1
            i = j + 1
            out.append('""')
        elif c == "'" and re.match(r"'(\\.|[^\\'])'", code[i:i + 4]):
            i += len(re.match(r"'(\\.|[^\\'])'", code[i:i + 4]).group(0))
        else:
            out.append(c)
            i += 1
    return "".join(out)


def module_of(rel: str) -> str:
    first = rel.split("/")[0]
    return first[:-3] if first.endswith(".rs") else first


def uses_in_braces(code: str, prefix: str):
    """Names imported by `use <prefix>{a, b::c, ...}` groups (first segment of each item)."""
    names = []
    for m in re.finditer(re.escape(prefix) + r"\{", code):
        depth, j = 1, m.end()
        while j < len(code) and depth:
            depth += {"{": 1, "}": -1}.get(code[j], 0)
            j += 1
        body = code[m.end():j - 1]
        # top-level items only
        depth, item, items = 0, "", []
        for ch in body:
            if ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
            if ch == "," and depth == 0:
                items.append(item)
                item = ""
            else:
                item += ch
        items.append(item)
        for it in items:
            it = it.strip()
            if it:
                names.append(re.split(r"[:\s{]", it)[0])
    return names


def scan(src: str):
    files = {}
    for root, _, names in os.walk(src):
        for f in names:
            if f.endswith(".rs"):
                p = os.path.join(root, f)
                files[os.path.relpath(p, src)] = strip(open(p, encoding="utf-8").read())
    mods = {module_of(r) for r in files} | {"bin"}
    arrows = defaultdict(lambda: defaultdict(list))  # from -> to -> [file]
    file_edges = defaultdict(set)
    for rel, code in files.items():
        me = module_of(rel)
        targets = set(re.findall(r"\bcrate::(\w+)", code))
        targets |= set(uses_in_braces(code, "crate::"))
        if me == "bin":
            targets |= set(re.findall(r"\bkafka_backup_operator::(\w+)", code))
            targets |= set(uses_in_braces(code, "kafka_backup_operator::"))
        for t in targets:
            if t in mods and t != me:
                arrows[me][t].append(rel)
        # file-level edges inside one module directory
        d = os.path.dirname(rel)
        if d:
            siblings = {os.path.splitext(f)[0] for f in os.listdir(os.path.join(src, d)) if f.endswith(".rs")}
            names = set(re.findall(r"\bsuper::(\w+)", code)) | set(uses_in_braces(code, "super::"))
            names |= set(re.findall(r"\bcrate::" + re.escape(me) + r"::(\w+)", code))
            names |= set(uses_in_braces(code, "crate::" + me + "::"))
            for nme in names:
                if nme in siblings and f"{d}/{nme}.rs" != rel:
                    file_edges[rel].add(f"{d}/{nme}.rs")
                elif nme in siblings and nme == "mod":
                    pass
    return files, arrows, file_edges


def sccs(edges):
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]
    nodes = set(edges) | {t for v in edges.values() for t in v}

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = set()
            while True:
                w = stack.pop()
                on.discard(w)
                comp.add(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(comp)

    sys.setrecursionlimit(10000)
    for v in sorted(nodes):
        if v not in index:
            visit(v)
    return out


BEGIN, END = "<!-- files:begin -->", "<!-- files:end -->"


def file_table(src: str) -> str:
    """Markdown table: every file of src/ and the first sentence of its head comment."""
    rows = ["| file | role (its head comment's first sentence) |", "|---|---|"]
    paths = []
    for root, _, names in os.walk(src):
        paths += [os.path.join(root, f) for f in names if f.endswith(".rs")]
    for p in sorted(paths, key=lambda p: os.path.relpath(p, src)):
        head = []
        for line in open(p, encoding="utf-8"):
            if line.startswith("//!"):
                head.append(line[3:].strip())
            elif head or line.strip():
                break
        text = " ".join(h for h in head if h)
        m = re.match(r"(.+?\.)(\s|$)", text)
        first = (m.group(1) if m else text).replace("|", "\\|")
        rows.append(f"| `src/{os.path.relpath(p, src)}` | {first} |")
    return "\n".join(rows) + "\n"


def doc_path(src: str) -> str:
    return os.path.join(src, "..", "docs", "architecture.md")


def table_in_doc(src: str):
    doc = open(doc_path(src), encoding="utf-8").read()
    if BEGIN not in doc or END not in doc:
        return doc, None
    return doc, doc.split(BEGIN, 1)[1].split(END, 1)[0].strip("\n") + "\n"


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    report = "--report" in sys.argv
    src = args[0] if args else os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src")
    if "--write-table" in sys.argv:
        doc, old = table_in_doc(src)
        if old is None:
            print(f"docs/architecture.md has no {BEGIN} ... {END} markers")
            return 1
        head, rest = doc.split(BEGIN, 1)
        tail = rest.split(END, 1)[1]
        open(doc_path(src), "w", encoding="utf-8").write(head + BEGIN + "\n" + file_table(src) + END + tail)
        print("docs/architecture.md: file table written")
        return 0
    files, arrows, file_edges = scan(src)
    bad = []
    for a, tos in sorted(arrows.items()):
        for b, where in sorted(tos.items()):
            if a not in RULES or b not in RULES:
                bad.append(f"{a} -> {b}: a module with no rule in scripts/check_layers.py RULES (add it, and to docs/architecture.md)")
            elif b not in RULES[a]:
                bad.append(f"{a} -> {b}: not allowed ({', '.join(sorted(set(where)))})")
    circles = [c for c in sccs(file_edges) if c not in ALLOWED_CIRCLES]
    # module-level circles are already broken floor rules; file-level circles are listed here
    for c in circles:
        bad.append("file circle: " + " <-> ".join(sorted(c)))
    if "--no-doc" not in sys.argv:
        _, table = table_in_doc(src)
        if table != file_table(src):
            bad.append("docs/architecture.md's file table is not the files of src/ and their head comments: run python3 scripts/check_layers.py --write-table (and make each head comment's first sentence say the file's role)")
    if report:
        print("module arrows (from -> to: files):")
        for a, tos in sorted(arrows.items()):
            print(f"  {a} -> {', '.join(sorted(tos))}")
        print("file circles:", [sorted(c) for c in sccs(file_edges)] or "none")
    if bad:
        print(f"{len(bad)} import rule(s) broken (docs/architecture.md, 'Layering'):")
        for b in bad:
            print("  " + b)
        return 1
    print(f"import rules hold: {len(files)} files, {sum(len(t) for t in arrows.values())} module arrows, every arrow allowed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
