#!/usr/bin/env python3
"""Rewrites a CUDA source (.cu / .cuh) into host C++ for the CPU emulation.

  kernel<<<grid, block[, shmem[, stream]]>>>(args...);
    -> ::emu::launch(<uses barriers>, "kernel", "file:line", grid, block, shmem, stream,
                     <__launch_bounds__ or 0>, [](auto... a) { kernel(a...); }, args...);
  __shared__ T name[...];  -> static T name[...]; ::emu::shared_poison(&name, sizeof(name));
  #pragma unroll           -> removed

A kernel "uses barriers" if its body, or the body of a __device__ function it calls
(transitively, by name, within the file), contains __syncthreads. Line numbers are kept
(a #line directive names the original file), so diagnostics point at the .cu source.

usage: rewrite.py IN OUT
"""
import re
import sys


def blank_comments(src):
    """Replaces comments by spaces (keeping newlines) so that parsing is not confused."""
    out = []
    i, n = 0, len(src)
    while i < n:
        c = src[i]
        if c == '"' or c == "'":
            q = c
            j = i + 1
            while j < n and src[j] != q:
                j += 2 if src[j] == '\\' else 1
            out.append(src[i:j + 1])
            i = j + 1
        elif src.startswith('//', i):
            j = src.find('\n', i)
            j = n if j < 0 else j
            out.append(' ' * (j - i))
            i = j
        elif src.startswith('/*', i):
            j = src.find('*/', i + 2)
            j = n if j < 0 else j + 2
            out.append(re.sub(r'[^\n]', ' ', src[i:j]))
            i = j
        else:
            out.append(c)
            i += 1
    return ''.join(out)


def match_brace(s, i, o='{', c='}'):
    depth = 0
    while i < len(s):
        if s[i] == o:
            depth += 1
        elif s[i] == c:
            depth -= 1
            if depth == 0:
                return i
        i += 1
    raise ValueError('unbalanced ' + o)


def functions(src):
    """{name: body} of the __global__ / __device__ functions defined in src."""
    out = {}
    s = re.sub(r'__launch_bounds__\s*\([^)]*\)', '', src)
    for m in re.finditer(r'__(?:global|device)__[^;{(]*?(\w+)\s*\(', s):
        name = m.group(1)
        p = match_brace(s, m.end() - 1, '(', ')')
        j = p + 1
        while j < len(s) and s[j] not in '{;':
            if s[j] == '(':  # constructor initialiser list member(...)
                j = match_brace(s, j, '(', ')')
            j += 1
        if j < len(s) and s[j] == '{':
            e = match_brace(s, j)
            out[name] = out.get(name, '') + s[j:e + 1]
    return out


def barrier_functions(funcs):
    uses = {f for f, b in funcs.items() if '__syncthreads' in b}
    changed = True
    while changed:
        changed = False
        for f, b in funcs.items():
            if f not in uses and any(re.search(r'\b%s\s*[<(]' % re.escape(u), b) for u in uses):
                uses.add(f)
                changed = True
    return uses


def split_top(s):
    parts, depth, cur = [], 0, ''
    for ch in s:
        if ch in '([{':
            depth += 1
        elif ch in ')]}':
            depth -= 1
        if ch == ',' and depth == 0:
            parts.append(cur)
            cur = ''
        else:
            cur += ch
    if cur.strip():
        parts.append(cur)
    return [p.strip() for p in parts]


def rewrite(src, path):
    src = blank_comments(src)
    funcs = functions(src)
    barrier = barrier_functions(funcs)
    bounds = {m.group(2): m.group(1) for m in
              re.finditer(r'__launch_bounds__\s*\(([^),]*)[^)]*\)\s*(\w+)\s*\(', src)}
    out, pos = [], 0
    while True:
        i = src.find('<<<', pos)
        if i < 0:
            out.append(src[pos:])
            break
        s = max(src.rfind(';', 0, i), src.rfind('{', 0, i), src.rfind('}', 0, i)) + 1
        while src[s].isspace():
            s += 1
        callee = src[s:i].strip()
        j = src.find('>>>', i)
        cfg = split_top(src[i + 3:j])
        while len(cfg) < 4:
            cfg.append('0' if len(cfg) == 2 else 'nullptr')
        k = src.index('(', j)
        e = match_brace(src, k, '(', ')')
        args = src[k + 1:e].strip()
        semi = src.index(';', e)
        base = re.sub(r'<.*', '', callee.replace(' ', '').replace('\n', '')).split('::')[-1]
        coop = 'true' if base in barrier else 'false'
        lb = bounds.get(base, '0')
        qual = re.sub(r'<.*', '', callee.replace(' ', '').replace('\n', ''))
        if '::' in qual and re.fullmatch(r'[A-Za-z_]\w*', lb):
            lb = qual.rsplit('::', 1)[0] + '::' + lb  # the bound named in the kernel's namespace
        line = src.count('\n', 0, s) + 1
        text = ('::emu::launch(%s, "%s", "%s:%d", %s, %s, %s, %s, %s, '
                '[](auto... emu_a) { %s(emu_a...); }%s);'
                % (coop, base, path, line, cfg[0], cfg[1], cfg[2], cfg[3], lb,
                   ' '.join(callee.split()), (', ' + args) if args else ''))
        out.append(src[pos:s])
        out.append(text.replace('\n', ' ') + '\n' * src.count('\n', s, semi + 1))
        pos = semi + 1
    res = ''.join(out)
    res = re.sub(r'__shared__\s+([^;]*?)\s*\b(\w+)\s*((?:\[[^\]]*\]\s*)+);',
                 lambda m: '%sstatic %s %s%s; ::emu::shared_poison(&%s, sizeof(%s));'
                 % (''.join(re.findall(r'alignas\s*\([^)]*\)\s*', m.group(1))),  # g++: alignas before static
                    re.sub(r'alignas\s*\([^)]*\)\s*', '', m.group(1)), m.group(2), m.group(3), m.group(2),
                    m.group(2)), res)
    res = re.sub(r'#\s*pragma\s+unroll[^\n]*', '', res)
    return '#line 1 "%s"\n' % path + res, sorted(barrier & set(funcs))


def main():
    inp, outp = sys.argv[1], sys.argv[2]
    src = open(inp).read()
    res, barrier = rewrite(src, inp)
    try:
        if open(outp).read() == res:
            return
    except OSError:
        pass
    open(outp, 'w').write(res)
    if barrier:
        print('rewrite.py: %s: barrier kernels/functions (run as fibers): %s' % (inp, ', '.join(barrier)))


if __name__ == '__main__':
    main()
