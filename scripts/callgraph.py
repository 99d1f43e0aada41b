#!/usr/bin/env python3
"""callgraph.py DIR: prints which files of DIR call functions of which other
files (direct calls of non-static functions, by name), and any cycles.

A rough reader, not a compiler: it takes a function as defined where a line
at column 0 names it and opens its parameter list, and as called wherever
its name is followed by '(' outside comments and strings. Good enough to
keep node/'s arrows pointing one way (docs/architecture.md). Exits 1 when
the files call each other in a circle."""
import os
import re
import sys

DEF = re.compile(r'^(?!static\b)[A-Za-z_][\w \*]*?\b([a-z_]\w*)\s*\(', re.M)
CALL = re.compile(r'\b([a-z_]\w*)\s*\(')


def strip(src):
    src = re.sub(r'/\*.*?\*/', ' ', src, flags=re.S)
    src = re.sub(r'//[^\n]*', ' ', src)
    return re.sub(r'"(\\.|[^"\\])*"', '""', src)


def main():
    d = sys.argv[1] if len(sys.argv) > 1 else 'node'
    files = sorted(f for f in os.listdir(d) if f.endswith('.c'))
    text = {f: strip(open(os.path.join(d, f)).read()) for f in files}
    owner = {}
    for f in files:
        for m in DEF.finditer(text[f]):
            line = text[f][m.start():text[f].find('\n', m.start())]
            if line.rstrip().endswith(';'):
                continue
            owner.setdefault(m.group(1), f)
    edges = {f: set() for f in files}
    for f in files:
        for m in CALL.finditer(text[f]):
            g = owner.get(m.group(1))
            if g and g != f:
                edges[f].add(g)
    for f in files:
        print('%-14s -> %s' % (f, ' '.join(sorted(edges[f])) or '-'))
    # Cycles: depth-first search over the file graph.
    cycles, state, stack = [], {}, []

    def visit(f):
        state[f] = 1
        stack.append(f)
        for g in sorted(edges[f]):
            if state.get(g) == 1:
                cycles.append(stack[stack.index(g):] + [g])
            elif g not in state:
                visit(g)
        stack.pop()
        state[f] = 2

    for f in files:
        if f not in state:
            visit(f)
    for c in cycles:
        print('cycle: ' + ' -> '.join(c))
    if not cycles:
        print('no cycles')
    return 1 if cycles else 0


if __name__ == '__main__':
    sys.exit(main())
