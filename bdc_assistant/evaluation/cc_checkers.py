"""Checkers for CodeContests problems (shared 240 set) whose statements accept any valid answer.

Each checker is written from the problem statement alone (no reference output is trusted beyond what the
statement implies, e.g. "YES"/"NO" feasibility and minimum values the statement asks to minimise) and is
registered in ``sandbox.checkers``. ``CHECKER_FOR`` maps problem ids to checker names.

``MULTI_ANSWER`` lists the problems, found by reading the statements of every problem whose reference
solution fails plain comparison, that accept several answers; :func:`accepts_any_answer` adds the ones a
phrase like "print any of them" gives away. ``INTERACTIVE`` problems cannot be judged on stdin/stdout at all.
Checkers treat the program's output as hostile text: any parse error means "wrong".
"""

from __future__ import annotations

import re
from collections.abc import Callable

from ..sandbox.checkers import register

CHECKER_FOR: dict[str, str] = {}

MULTI_ANSWER: frozenset[str] = frozenset(
    {
        "1031_e_triple_flips_11983",
        "1071_c_triple_flips_5739",
        "1041_e_tree_reconstruction_8858",
        "1076_d_edge_deletion_9486",
        "1217_d_coloring_edges_7410",
        "1391_e_pairs_of_pairs_6690",
        "1407_e_egor_in_the_republic_of_dagestan_1382",
        "1427_e_xum_2840",
        "1438_d_powerful_ksenia_5652",
        "1521_d_nastia_plays_with_a_tree_11693",
        "27_b_tournament_1914",
        "407_a_triangle_11184",
        "45_h_road_problem_460",
        "464_b_restore_cube__2130",
        "507_e_breaking_good_9731",
        "576_a_vasya_and_petyas_game_7650",
        "618_c_constellation_3489",
        "715_b_complete_the_graph_3806",
        "749_b_parallelogram_is_back_2975",
        "774_h_repairing_of_string_9638",
        "862_c_mahmoud_and_ehab_and_the_xor_2355",
        "925_c_big_secret_3711",
        "963_b_destruction_of_a_tree_65",
    }
)
INTERACTIVE: frozenset[str] = frozenset({"1534_e_lost_array_11486", "680_c_bear_and_prime_100_4430"})

_ANY = re.compile(
    r"any of them|print any|output any|multiple (possible )?(answers|solutions)|several (possible )?"
    r"(answers|solutions)|any (valid|correct|possible|suitable)|more than one (answer|solution)|"
    r"If there are many",
    re.I,
)


def accepts_any_answer(problem_id: str, statement: str) -> bool:
    return problem_id in MULTI_ANSWER or bool(_ANY.search(statement))


def checker_for(problem_id: str) -> str | None:
    return CHECKER_FOR.get(problem_id)


Check = Callable[[str, str, str], bool]


def _cc(*ids: str) -> Callable[[Check], Check]:
    """Register a checker under the first id's name and map every listed id to it."""

    def deco(fn: Check) -> Check:
        name = "cc:" + ids[0]
        register(name)(fn)
        for pid in ids:
            CHECKER_FOR[pid] = name
        return fn

    return deco


def _ints(text: str) -> list[int]:
    return [int(t) for t in text.split()]


def _verdict_word(text: str) -> str:
    toks = text.split()
    return toks[0].upper() if toks else ""


def _after_yes(exp: str, out: str) -> bool | list[int]:
    """The integers after a "YES" answer, to be checked by the caller; or the verdict itself.

    A verdict that differs from the expected one is wrong, and a matching "NO" is right only
    when nothing follows it.
    """
    word = _verdict_word(out)
    if word != _verdict_word(exp):
        return False
    if word == "NO":
        return len(out.split()) == 1
    return _ints(" ".join(out.split()[1:]))


@_cc("27_b_tournament_1914")
def _tournament(inp: str, exp: str, out: str) -> bool:
    nums = _ints(inp)
    n, games = nums[0], nums[1:]
    played = {frozenset((games[i], games[i + 1])) for i in range(0, len(games), 2)}
    x, y = _ints(out)
    if x == y or frozenset((x, y)) in played or not (1 <= x <= n and 1 <= y <= n):
        return False
    wins = [0] * (n + 1)
    for i in range(0, len(games), 2):
        wins[games[i]] += 1
    wins[x] += 1
    return sorted(wins[1:]) == list(range(n))  # a transitive tournament: distinct speeds


@_cc("1217_d_coloring_edges_7410")
def _coloring_edges(inp: str, exp: str, out: str) -> bool:
    nums = _ints(inp)
    n, m = nums[0], nums[1]
    edges = [(nums[2 + 2 * i], nums[3 + 2 * i]) for i in range(m)]
    got = _ints(out)
    k, colors = got[0], got[1:]
    if k != _ints(exp)[0] or len(colors) != m or any(not 1 <= c <= k for c in colors):
        return False
    for color in range(1, k + 1):
        adj: dict[int, list[int]] = {}
        indeg = [0] * (n + 1)
        for (u, v), c in zip(edges, colors, strict=True):
            if c == color:
                adj.setdefault(u, []).append(v)
                indeg[v] += 1
        stack = [v for v in range(1, n + 1) if indeg[v] == 0]
        seen = 0
        while stack:
            u = stack.pop()
            seen += 1
            for v in adj.get(u, ()):
                indeg[v] -= 1
                if indeg[v] == 0:
                    stack.append(v)
        if seen != n:
            return False
    return True


@_cc("862_c_mahmoud_and_ehab_and_the_xor_2355")
def _xor_set(inp: str, exp: str, out: str) -> bool:
    n, x = _ints(inp)[:2]
    vals = _after_yes(exp, out)
    if isinstance(vals, bool):
        return vals
    acc = 0
    for v in vals:
        acc ^= v
    return len(vals) == n and len(set(vals)) == n and all(0 <= v <= 10**6 for v in vals) and acc == x


@_cc("576_a_vasya_and_petyas_game_7650")
def _vasya_petya(inp: str, exp: str, out: str) -> bool:
    n = _ints(inp)[0]
    got = _ints(out)
    k, ys = got[0], got[1:]
    if k != _ints(exp)[0] or len(ys) != k or any(not 1 <= y <= n for y in ys):
        return False
    signatures = {tuple(x % y == 0 for y in ys) for x in range(1, n + 1)}
    return len(signatures) == n


@_cc("618_c_constellation_3489")
def _constellation(inp: str, exp: str, out: str) -> bool:
    nums = _ints(inp)
    n = nums[0]
    pts = [(nums[1 + 2 * i], nums[2 + 2 * i]) for i in range(n)]
    idx = _ints(out)
    if len(idx) != 3 or len(set(idx)) != 3 or any(not 1 <= i <= n for i in idx):
        return False
    a, b, c = (pts[i - 1] for i in idx)

    def cross(o: tuple[int, int], p: tuple[int, int], q: tuple[int, int]) -> int:
        return (p[0] - o[0]) * (q[1] - o[1]) - (p[1] - o[1]) * (q[0] - o[0])

    area = cross(a, b, c)
    if area == 0:
        return False
    sign = 1 if area > 0 else -1
    chosen = {i - 1 for i in idx}
    for j, p in enumerate(pts):
        if j in chosen:
            continue
        d1, d2, d3 = sign * cross(a, b, p), sign * cross(b, c, p), sign * cross(c, a, p)
        if d1 >= 0 and d2 >= 0 and d3 >= 0:  # inside or on the border
            return False
    return True


@_cc("1438_d_powerful_ksenia_5652")
def _ksenia(inp: str, exp: str, out: str) -> bool:
    nums = _ints(inp)
    n, a = nums[0], nums[1:]
    rest = _after_yes(exp, out)
    if isinstance(rest, bool):
        return rest
    m, ops = rest[0], rest[1:]
    if not 0 <= m <= n or len(ops) != 3 * m:
        return False
    for t in range(m):
        i, j, k = ops[3 * t : 3 * t + 3]
        if len({i, j, k}) != 3 or not all(1 <= v <= n for v in (i, j, k)):
            return False
        v = a[i - 1] ^ a[j - 1] ^ a[k - 1]
        a[i - 1] = a[j - 1] = a[k - 1] = v
    return len(set(a)) == 1


@_cc("1031_e_triple_flips_11983", "1071_c_triple_flips_5739")
def _triple_flips(inp: str, exp: str, out: str) -> bool:
    nums = _ints(inp)
    n, a = nums[0], nums[1:]
    rest = _after_yes(exp, out)
    if isinstance(rest, bool):
        return rest
    m, ops = rest[0], rest[1:]
    if not 0 <= m <= n // 3 + 12 or len(ops) != 3 * m:
        return False
    for t in range(m):
        x, y, z = sorted(ops[3 * t : 3 * t + 3])
        if not (1 <= x < y < z <= n and y - x == z - y):
            return False
        for p in (x, y, z):
            a[p - 1] ^= 1
    return not any(a)


@_cc("749_b_parallelogram_is_back_2975")
def _parallelogram(inp: str, exp: str, out: str) -> bool:
    e, g = _ints(exp), _ints(out)
    if not g or g[0] != e[0] or len(g) != len(e):
        return False
    pairs = lambda v: sorted(zip(v[1::2], v[2::2], strict=True))  # noqa: E731
    return pairs(e) == pairs(g)


@_cc("407_a_triangle_11184")
def _triangle(inp: str, exp: str, out: str) -> bool:
    a, b = _ints(inp)[:2]
    c = _after_yes(exp, out)
    if isinstance(c, bool):
        return c
    if len(c) != 6 or any(abs(v) > 10**9 for v in c):
        return False
    pts = [(c[0], c[1]), (c[2], c[3]), (c[4], c[5])]
    for i in range(3):  # right angle at pts[i], legs a and b, no side parallel to an axis
        o, p, q = pts[i], pts[(i + 1) % 3], pts[(i + 2) % 3]
        u, v = (p[0] - o[0], p[1] - o[1]), (q[0] - o[0], q[1] - o[1])
        if u[0] * v[0] + u[1] * v[1] != 0:
            continue
        legs = sorted([u[0] ** 2 + u[1] ** 2, v[0] ** 2 + v[1] ** 2])
        if legs != sorted([a * a, b * b]):
            return False
        sides = [u, v, (q[0] - p[0], q[1] - p[1])]
        return all(s[0] != 0 and s[1] != 0 for s in sides)
    return False


@_cc("774_h_repairing_of_string_9638")
def _repair_string(inp: str, exp: str, out: str) -> bool:
    nums = _ints(inp)
    n, c = nums[0], nums[1:]
    s = out.strip()
    if len(s) != n or not re.fullmatch(r"[a-z]+", s):
        return False
    counts = [0] * n
    run = 1
    for i in range(n):
        if i and s[i] == s[i - 1]:
            run += 1
        else:
            run = 1
        for length in range(1, run + 1):
            counts[length - 1] += 1
    return counts == c


@_cc("925_c_big_secret_3711")
def _big_secret(inp: str, exp: str, out: str) -> bool:
    nums = _ints(inp)
    n, b = nums[0], nums[1:]
    perm = _after_yes(exp, out)
    if isinstance(perm, bool):
        return perm
    if len(perm) != n or sorted(perm) != sorted(b):
        return False
    acc, prev = 0, -1
    for v in perm:
        acc ^= v
        if acc <= prev:
            return False
        prev = acc
    return True


@_cc("963_b_destruction_of_a_tree_65")
def _destroy_tree(inp: str, exp: str, out: str) -> bool:
    nums = _ints(inp)
    n, p = nums[0], nums[1:]
    order = _after_yes(exp, out)
    if isinstance(order, bool):
        return order
    if sorted(order) != list(range(1, n + 1)):
        return False
    adj: list[set[int]] = [set() for _ in range(n + 1)]
    for i, par in enumerate(p, 1):
        if par:
            adj[i].add(par)
            adj[par].add(i)
    for v in order:
        if len(adj[v]) % 2:
            return False
        for u in adj[v]:
            adj[u].discard(v)
        adj[v].clear()
    return True


@_cc("464_b_restore_cube__2130")
def _restore_cube(inp: str, exp: str, out: str) -> bool:
    rows = [sorted(_ints(line)) for line in inp.strip().splitlines()]
    vals = _after_yes(exp, out)
    if isinstance(vals, bool):
        return vals
    if len(vals) != 24:
        return False
    pts = [tuple(vals[3 * i : 3 * i + 3]) for i in range(8)]
    if any(sorted(pt) != rows[i] for i, pt in enumerate(pts)):
        return False
    d = sorted(
        sum((a - b) ** 2 for a, b in zip(p, q, strict=True)) for i, p in enumerate(pts) for q in pts[i + 1 :]
    )
    side = d[0]
    return side > 0 and d[:12] == [side] * 12 and d[12:24] == [2 * side] * 12 and d[24:] == [3 * side] * 4


@_cc("1041_e_tree_reconstruction_8858")
def _tree_reconstruction(inp: str, exp: str, out: str) -> bool:
    nums = _ints(inp)
    n = nums[0]
    want = sorted(tuple(sorted(nums[1 + 2 * i : 3 + 2 * i])) for i in range(n - 1))
    e = _after_yes(exp, out)
    if isinstance(e, bool):
        return e
    if len(e) != 2 * (n - 1):
        return False
    edges = [(e[2 * i], e[2 * i + 1]) for i in range(n - 1)]
    if any(not (1 <= x <= n and 1 <= y <= n) or x == y for x, y in edges):
        return False
    got = []
    for skip in range(n - 1):
        adj: list[list[int]] = [[] for _ in range(n + 1)]
        for j, (x, y) in enumerate(edges):
            if j != skip:
                adj[x].append(y)
                adj[y].append(x)
        start = edges[skip][0]
        seen = {start}
        stack = [start]
        while stack:
            u = stack.pop()
            for v in adj[u]:
                if v not in seen:
                    seen.add(v)
                    stack.append(v)
        if edges[skip][1] in seen:
            return False  # not a tree
        other = set(range(1, n + 1)) - seen
        got.append(tuple(sorted((max(seen), max(other)))))
    return sorted(got) == want


def _dijkstra(n: int, adj: list[list[tuple[int, int]]], src: int) -> list[float]:
    import heapq

    dist: list[float] = [float("inf")] * n
    dist[src] = 0
    heap = [(0, src)]
    while heap:
        d, u = heapq.heappop(heap)
        if d > dist[u]:
            continue
        for v, w in adj[u]:
            nd = d + w
            if nd < dist[v]:
                dist[v] = nd
                heapq.heappush(heap, (nd, v))
    return dist


@_cc("1076_d_edge_deletion_9486")
def _edge_deletion(inp: str, exp: str, out: str) -> bool:
    nums = _ints(inp)
    n, m, k = nums[:3]
    edges = [tuple(nums[3 + 3 * i : 6 + 3 * i]) for i in range(m)]
    got = _ints(out)
    e, keep = got[0], got[1:]
    if not 0 <= e <= k or len(keep) != e or len(set(keep)) != e or any(not 1 <= i <= m for i in keep):
        return False
    full: list[list[tuple[int, int]]] = [[] for _ in range(n + 1)]
    kept: list[list[tuple[int, int]]] = [[] for _ in range(n + 1)]
    for x, y, w in edges:
        full[x].append((y, w))
        full[y].append((x, w))
    for i in keep:
        x, y, w = edges[i - 1]
        kept[x].append((y, w))
        kept[y].append((x, w))
    d_full, d_kept = _dijkstra(n + 1, full, 1), _dijkstra(n + 1, kept, 1)
    good = sum(1 for v in range(1, n + 1) if d_kept[v] == d_full[v])
    return good == min(n - 1, k) + 1  # a shortest-path tree keeps one more good vertex per edge


@_cc("1427_e_xum_2840")
def _xum(inp: str, exp: str, out: str) -> bool:
    x = _ints(inp)[0]
    lines = out.strip().splitlines()
    q = int(lines[0])
    if not 0 <= q <= 100_000 or len(lines) != q + 1:
        return False
    board = {x}
    for line in lines[1:]:
        a_s, op, b_s = line.split()
        a, b = int(a_s), int(b_s)
        if a not in board or b not in board or op not in "+^":
            return False
        v = a + b if op == "+" else a ^ b
        if not 0 <= v <= 5 * 10**18:
            return False
        board.add(v)
    return 1 in board


@_cc("715_b_complete_the_graph_3806")
def _complete_graph(inp: str, exp: str, out: str) -> bool:
    nums = _ints(inp)
    n, m, length, s, t = nums[:5]
    edges = {}
    for i in range(m):
        u, v, w = nums[5 + 3 * i : 8 + 3 * i]
        edges[frozenset((u, v))] = w
    vals = _after_yes(exp, out)
    if isinstance(vals, bool):
        return vals
    if len(vals) != 3 * m:
        return False
    adj: list[list[tuple[int, int]]] = [[] for _ in range(n)]
    seen = set()
    for i in range(m):
        u, v, w = vals[3 * i : 3 * i + 3]
        key = frozenset((u, v))
        if key not in edges or key in seen or not 1 <= w <= 10**18:
            return False
        if edges[key] and edges[key] != w:
            return False
        seen.add(key)
        adj[u].append((v, w))
        adj[v].append((u, w))
    return _dijkstra(n, adj, s)[t] == length


@_cc("1407_e_egor_in_the_republic_of_dagestan_1382")
def _egor(inp: str, exp: str, out: str) -> bool:
    from collections import deque

    nums = _ints(inp)
    n, m = nums[:2]
    toks = out.split()
    if len(toks) != 2 or int(toks[0]) != _ints(exp)[0]:
        return False
    color = toks[1]
    if len(color) != n or set(color) - {"0", "1"}:
        return False
    adj: list[list[int]] = [[] for _ in range(n + 1)]
    for i in range(m):
        u, v, t = nums[2 + 3 * i : 5 + 3 * i]
        if int(color[u - 1]) == t:  # a road can be left only at the time its start city allows
            adj[u].append(v)
    dist = [-1] * (n + 1)
    dist[1] = 0
    queue = deque([1])
    while queue:
        u = queue.popleft()
        for v in adj[u]:
            if dist[v] < 0:
                dist[v] = dist[u] + 1
                queue.append(v)
    return dist[n] == int(toks[0])


@_cc("45_h_road_problem_460")
def _road_problem(inp: str, exp: str, out: str) -> bool:
    nums = _ints(inp)
    n, m = nums[:2]
    got = _ints(out)
    t = got[0]
    if t != _ints(exp)[0]:
        return False
    if t <= 0:
        return len(got) == 1
    if len(got) != 1 + 2 * t:
        return False
    edges = {frozenset(nums[2 + 2 * i : 4 + 2 * i]) for i in range(m)}
    all_edges = [tuple(nums[2 + 2 * i : 4 + 2 * i]) for i in range(m)]
    for i in range(t):
        a, b = got[1 + 2 * i : 3 + 2 * i]
        key = frozenset((a, b))
        if a == b or not (1 <= a <= n and 1 <= b <= n) or key in edges:
            return False
        edges.add(key)
        all_edges.append((a, b))
    return not _has_bridge(n, all_edges)


def _has_bridge(n: int, edges: list[tuple[int, ...]]) -> bool:
    adj: list[list[tuple[int, int]]] = [[] for _ in range(n + 1)]
    for idx, (a, b) in enumerate(edges):
        adj[a].append((b, idx))
        adj[b].append((a, idx))
    tin = [0] * (n + 1)
    low = [0] * (n + 1)
    timer = 1
    for root in range(1, n + 1):
        if tin[root]:
            continue
        tin[root] = low[root] = timer
        timer += 1
        stack = [(root, -1, iter(adj[root]))]
        while stack:
            u, via, it = stack[-1]
            advanced = False
            for v, idx in it:
                if idx == via:
                    continue
                if tin[v]:
                    low[u] = min(low[u], tin[v])
                else:
                    tin[v] = low[v] = timer
                    timer += 1
                    stack.append((v, idx, iter(adj[v])))
                    advanced = True
                    break
            if not advanced:
                stack.pop()
                if stack:
                    parent = stack[-1][0]
                    low[parent] = min(low[parent], low[u])
                    if low[u] > tin[parent]:
                        return True
    return False


@_cc("507_e_breaking_good_9731")
def _breaking_good(inp: str, exp: str, out: str) -> bool:
    from collections import deque

    nums = _ints(inp)
    n, m = nums[:2]
    state: dict[frozenset[int], int] = {}
    adj: list[list[int]] = [[] for _ in range(n + 1)]
    for i in range(m):
        x, y, z = nums[2 + 3 * i : 5 + 3 * i]
        state[frozenset((x, y))] = z
        adj[x].append(y)
        adj[y].append(x)
    got = _ints(out)
    k = got[0]
    if k != _ints(exp)[0] or len(got) != 1 + 3 * k:
        return False
    touched = set()
    for i in range(k):
        x, y, z = got[1 + 3 * i : 4 + 3 * i]
        key = frozenset((x, y))
        if key not in state or key in touched or state[key] == z or z not in (0, 1):
            return False
        touched.add(key)
        state[key] = z
    dist = [-1] * (n + 1)
    dist[1] = 0
    queue = deque([1])
    while queue:
        u = queue.popleft()
        for v in adj[u]:
            if dist[v] < 0:
                dist[v] = dist[u] + 1
                queue.append(v)
    working = [tuple(key) for key, z in state.items() if z == 1]
    if len(working) != dist[n]:
        return False
    wadj: dict[int, list[int]] = {}
    for a, b in working:
        wadj.setdefault(a, []).append(b)
        wadj.setdefault(b, []).append(a)
    prev, cur, steps = 0, 1, 0  # walk the working roads from 1; they must be one path ending at n
    while cur != n:
        nxt = [v for v in wadj.get(cur, []) if v != prev]
        if len(nxt) != 1:
            return False
        prev, cur = cur, nxt[0]
        steps += 1
        if steps > len(working):
            return False
    return steps == len(working)


@_cc("1521_d_nastia_plays_with_a_tree_11693")
def _nastia(inp: str, exp: str, out: str) -> bool:
    nums, want, got = _ints(inp), _ints(exp), _ints(out)
    pos, ew, og = 1, 0, 0
    for _ in range(nums[0]):
        n = nums[pos]
        pos += 1
        adj: list[set[int]] = [set() for _ in range(n + 1)]
        for _ in range(n - 1):
            a, b = nums[pos], nums[pos + 1]
            pos += 2
            adj[a].add(b)
            adj[b].add(a)
        k = got[og]
        if k != want[ew]:
            return False
        ew += 1 + 4 * want[ew]
        ops = got[og + 1 : og + 1 + 4 * k]
        og += 1 + 4 * k
        if len(ops) != 4 * k:
            return False
        for i in range(k):
            x1, y1, x2, y2 = ops[4 * i : 4 * i + 4]
            if y1 not in adj[x1] or x2 == y2 or not (1 <= x2 <= n and 1 <= y2 <= n) or y2 in adj[x2]:
                return False
            adj[x1].discard(y1)
            adj[y1].discard(x1)
            adj[x2].add(y2)
            adj[y2].add(x2)
        if any(len(adj[v]) > 2 for v in range(1, n + 1)):
            return False
        seen, stack = {1}, [1]
        while stack:
            for v in adj[stack.pop()]:
                if v not in seen:
                    seen.add(v)
                    stack.append(v)
        if len(seen) != n:
            return False
    return og == len(got)


@_cc("1391_e_pairs_of_pairs_6690")
def _pairs_of_pairs(inp: str, exp: str, out: str) -> bool:
    nums, toks = _ints(inp), out.split()
    pos, op = 1, 0
    for _ in range(nums[0]):
        n, m = nums[pos], nums[pos + 1]
        pos += 2
        edges = [(nums[pos + 2 * i], nums[pos + 2 * i + 1]) for i in range(m)]
        pos += 2 * m
        edge_set = {frozenset(e) for e in edges}
        need = (n + 1) // 2
        kind, k = toks[op].upper(), int(toks[op + 1])
        op += 2
        if kind == "PATH":
            path = [int(t) for t in toks[op : op + k]]
            op += k
            if (
                len(path) != k
                or not need <= k <= n
                or len(set(path)) != k
                or any(not 1 <= v <= n for v in path)
            ):
                return False
            if any(frozenset((path[i], path[i + 1])) not in edge_set for i in range(k - 1)):
                return False
        elif kind == "PAIRING":
            flat = [int(t) for t in toks[op : op + 2 * k]]
            op += 2 * k
            if len(flat) != 2 * k or not need <= 2 * k <= n or len(set(flat)) != 2 * k:
                return False
            pair_of = {}
            for i in range(k):
                pair_of[flat[2 * i]] = pair_of[flat[2 * i + 1]] = i
            inside = [0] * k
            between: dict[tuple[int, int], int] = {}
            for u, v in edges:
                if u in pair_of and v in pair_of:
                    p, q = pair_of[u], pair_of[v]
                    if p == q:
                        inside[p] += 1
                    else:
                        key = (min(p, q), max(p, q))
                        between[key] = between.get(key, 0) + 1
            if any(inside[p] + inside[q] + c > 2 for (p, q), c in between.items()):
                return False
        else:
            return False
    return op == len(toks)
