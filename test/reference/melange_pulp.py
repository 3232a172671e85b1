#!/usr/bin/env python3
"""Independent reference for the Mélange solver: the paper's binary-slice ILP, built with PuLP, solved by CBC.

Deliberately written from the paper (arXiv 2404.14527, section "Solver"), not from our TypeScript model:

  * every bucket b with traffic is cut into S equal slices; slice i carries r_i = r_b / S req/s;
  * L_ij = r_i / MaxTput(j, b(i)) is the load (in replicas) slice i puts on GPU type j;
  * A_ij in {0,1} for every (slice, type) where type j can serve the bucket (MaxTput > 0);
  * sum_j A_ij = 1 for every slice;            (each slice goes to exactly one type)
  * sum_i A_ij * L_ij <= B_j for every type;   (pooled capacity per type)
  * B_j integer, minReplicas <= B_j (<= maxReplicas when given);
  * minimise sum_j cost_j * B_j.

Usage: python3 melange_pulp.py [--time-limit SECONDS] [--progress] < instances.json > results.json

stdin : a JSON array of instances with the field names of SolveInput (src/solver/types.ts):
        {buckets:{inputEdges,outputEdges}, workload:{totalRate,fractions}|{bucketRates},
         gpus:[{id,costPerHour,maxThroughput,minReplicas?,maxReplicas?}], sliceFactor, headroomPercent?}
        (`mode` is ignored: this program only knows the paper's sliced form; sliceFactor defaults to 8.)
stdout: a JSON array, one result per instance, in order:
        {status: 'optimal'|'feasible'|'infeasible'|'timeout'|'error', cost, replicas:{id:n},
         ms (wall time of the CBC solve, measured here), buildMs (model construction), variables,
         constraints, message?}
        'feasible' = the time limit stopped CBC with an incumbent (optimality not proven);
        'timeout'  = the time limit stopped CBC with no incumbent.
Exit status: 0 on success (even if some instances are infeasible); 3 if pulp is missing; 4 if no CBC binary.
One process solves the whole batch, so per-instance times exclude interpreter start-up.
"""

import json
import math
import shutil
import sys
import time

try:
    import pulp
except ImportError:
    sys.stderr.write(
        "melange_pulp: the python module 'pulp' is missing for %s; install the Debian packages: "
        "apt-get install -y python3-pulp coinor-cbc\n" % sys.executable
    )
    sys.exit(3)


def make_cbc(time_limit):
    kwargs = {"msg": False}
    if time_limit is not None:
        kwargs["timeLimit"] = time_limit
    solver = pulp.PULP_CBC_CMD(**kwargs)
    if solver.available():
        return solver
    # The Debian python3-pulp package strips pulp's bundled CBC; use the coinor-cbc binary instead.
    path = shutil.which("cbc") or "/usr/bin/cbc"
    solver = pulp.COIN_CMD(path=path, **kwargs)
    if not solver.available():
        sys.stderr.write(
            "melange_pulp: no CBC binary (neither pulp's bundled one nor %s); "
            "apt-get install -y coinor-cbc\n" % path
        )
        sys.exit(4)
    return solver


def cell(matrix, i, o):
    """matrix[i][o], 0 when the row or cell is missing (ragged/absent = cannot serve / no traffic)."""
    if matrix is None or i >= len(matrix):
        return 0.0
    row = matrix[i]
    if row is None or o >= len(row):
        return 0.0
    v = row[o]
    return 0.0 if v is None else float(v)


def bucket_rates(inst):
    ni = len(inst["buckets"]["inputEdges"])
    no = len(inst["buckets"]["outputEdges"])
    wl = inst["workload"]
    mult = 1.0 + float(inst.get("headroomPercent") or 0.0) / 100.0
    if "bucketRates" in wl:
        base = [[cell(wl["bucketRates"], i, o) for o in range(no)] for i in range(ni)]
    else:
        total = float(wl["totalRate"])
        base = [[total * cell(wl["fractions"], i, o) for o in range(no)] for i in range(ni)]
    return [[r * mult for r in row] for row in base]


def solve_one(inst, time_limit):
    t0 = time.perf_counter()
    S = int(inst.get("sliceFactor") or 8)
    gpus = inst["gpus"]
    ni = len(inst["buckets"]["inputEdges"])
    no = len(inst["buckets"]["outputEdges"])
    rates = bucket_rates(inst)

    prob = pulp.LpProblem("melange", pulp.LpMinimize)
    B = []
    for j, g in enumerate(gpus):
        lo = int(g.get("minReplicas") or 0)
        hi = g.get("maxReplicas")
        B.append(pulp.LpVariable("B_%d" % j, lowBound=lo, upBound=None if hi is None else int(hi), cat="Integer"))
    prob += pulp.lpSum(float(g["costPerHour"]) * B[j] for j, g in enumerate(gpus))

    capacity_terms = [[] for _ in gpus]  # per type: (A_ij, L_ij)
    slices = []  # (i, o, [(j, A_ij, L_ij)])
    n_rows = 0
    for i in range(ni):
        for o in range(no):
            r = rates[i][o]
            if r <= 0:
                continue
            servers = [j for j, g in enumerate(gpus) if cell(g["maxThroughput"], i, o) > 0]
            if not servers:
                # sum_j A_ij = 1 with no A_ij at all: the model has no feasible point.
                return {
                    "status": "infeasible",
                    "message": "bucket [%d][%d] has %.6g req/s and no GPU type can serve it" % (i, o, r),
                    "ms": 0.0,
                    "buildMs": (time.perf_counter() - t0) * 1000.0,
                }
            r_slice = r / S
            for s in range(S):
                terms = []
                for j in servers:
                    a = pulp.LpVariable("A_%d_%d_%d_%d" % (i, o, s, j), cat="Binary")
                    load = r_slice / cell(gpus[j]["maxThroughput"], i, o)
                    terms.append((j, a, load))
                    capacity_terms[j].append((a, load))
                prob += pulp.lpSum(a for _, a, _ in terms) == 1, "slice_%d_%d_%d" % (i, o, s)
                n_rows += 1
                slices.append((i, o, terms))
    for j, terms in enumerate(capacity_terms):
        if terms:
            prob += pulp.lpSum(load * a for a, load in terms) - B[j] <= 0, "cap_%d" % j
            n_rows += 1
    n_vars = len(B) + sum(len(t) for _, _, t in slices)
    build_ms = (time.perf_counter() - t0) * 1000.0

    t1 = time.perf_counter()
    prob.solve(make_cbc(time_limit))
    ms = (time.perf_counter() - t1) * 1000.0

    base = {"ms": ms, "buildMs": build_ms, "variables": n_vars, "constraints": n_rows}
    if prob.status == pulp.LpStatusInfeasible:
        return dict(base, status="infeasible", message="CBC: infeasible")
    if prob.status != pulp.LpStatusOptimal:
        if prob.sol_status == pulp.LpSolutionNoSolutionFound or prob.status == pulp.LpStatusNotSolved:
            return dict(base, status="timeout", message="CBC stopped (%s) without a solution" % pulp.LpStatus[prob.status])
        return dict(base, status="error", message="CBC status %s" % pulp.LpStatus[prob.status])

    replicas = {}
    cost = 0.0
    for j, g in enumerate(gpus):
        v = B[j].value()
        n = int(round(v if v is not None else 0.0))
        replicas[g["id"]] = n
        cost += float(g["costPerHour"]) * n

    # Re-check the rounded point against the paper's constraints ourselves.
    load = [0.0] * len(gpus)
    for i, o, terms in slices:
        chosen = [(j, l) for j, a, l in terms if (a.value() or 0.0) > 0.5]
        if len(chosen) != 1:
            return dict(base, status="error", message="slice of bucket [%d][%d] assigned %d times" % (i, o, len(chosen)))
        load[chosen[0][0]] += chosen[0][1]
    for j, g in enumerate(gpus):
        if load[j] > replicas[g["id"]] + 1e-6:
            return dict(base, status="error", message="type %s: load %.9g > %d replicas" % (g["id"], load[j], replicas[g["id"]]))

    status = "optimal" if prob.sol_status == pulp.LpSolutionOptimal else "feasible"
    return dict(base, status=status, cost=cost, replicas=replicas)


def main(argv):
    time_limit = None
    progress = False
    k = 0
    while k < len(argv):
        if argv[k] == "--time-limit":
            time_limit = float(argv[k + 1])
            k += 2
        elif argv[k] == "--progress":
            progress = True
            k += 1
        else:
            sys.stderr.write("melange_pulp: unknown argument %s\n" % argv[k])
            return 2
    make_cbc(time_limit)  # fail fast (exit 4) when CBC is missing
    instances = json.load(sys.stdin)
    results = []
    for n, inst in enumerate(instances):
        try:
            res = solve_one(inst, time_limit)
        except Exception as exc:  # report, keep going: one bad instance must not hide the others
            res = {"status": "error", "message": "%s: %s" % (type(exc).__name__, exc), "ms": 0.0}
        results.append(res)
        if progress:
            sys.stderr.write(
                "  [reference] %d/%d %s %.0f ms\n" % (n + 1, len(instances), res["status"], res.get("ms", 0.0))
            )
            sys.stderr.flush()
    json.dump(results, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
