"""Speed and memory of diff-safety's exact nearest-neighbour search at 10k, 100k and 1M training items.

Synthetic training vectors (standard normal, ``--dim`` values each; for the tiled metric, images
(1, 16, 16) cut into 4 x 4 tiles) are searched by ``--queries`` queries for their ``--k`` nearest,
with :class:`diff_safety.neighbours.NeighbourIndex`: the torch backend for ``l2``, ``cosine`` and
``tiled-l2``, and faiss's exact flat index for ``l2`` where faiss is installed. Per row: the time
to build the index, the time to search, the training items scanned per second (items x queries /
search time), the queries per second, the index's size and the growth of the process's peak
resident memory while the row ran.

    OMP_NUM_THREADS=1 python tools/bench/safety_nn.py --sizes 10000,100000,1000000 --dim 256 --queries 256

Prints a markdown table (docs/safety.md has the one measured on a 2-core CPU).
"""

from __future__ import annotations

import argparse
import resource
import time


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run(sizes, dim: int, queries: int, k: int, metrics, seed: int = 0) -> list[dict]:
    import torch

    from diff_safety.neighbours import NeighbourIndex, faiss_available

    rows = []
    for size in sizes:
        g = torch.Generator().manual_seed(seed)
        data = torch.randn(size, dim, generator=g)
        q = data[torch.randint(size, (queries,), generator=g)] + 0.1 * torch.randn(queries, dim, generator=g)
        plans = [(m, "torch") for m in metrics] + ([("l2", "faiss")] if faiss_available() else [])
        for metric, backend in plans:
            shape = (1, 16, 16) if metric == "tiled-l2" else (dim,)
            if metric == "tiled-l2" and dim != 256:
                continue
            x, qq = data.reshape(size, *shape), q.reshape(queries, *shape)
            before = _peak_mib()
            start = time.perf_counter()
            index = NeighbourIndex(x, metric=metric, backend=backend, grid=4)
            built = time.perf_counter() - start
            start = time.perf_counter()
            found = index.search(qq, k=k)
            searched = time.perf_counter() - start
            assert found.indices.shape == (queries, min(k, size))
            rows.append(
                {
                    "items": size,
                    "metric": metric,
                    "backend": backend,
                    "build s": round(built, 2),
                    "search s": round(searched, 2),
                    "items/s": f"{size * queries / searched:.3g}",
                    "queries/s": round(queries / searched, 1),
                    "index MiB": round(size * dim * 4 / 2**20, 1),
                    "peak RSS growth MiB": round(max(0.0, _peak_mib() - before), 1),
                }
            )
            del index
        del data
    return rows


def markdown(rows: list[dict]) -> str:
    cols = list(rows[0])
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(str(r[c]) for c in cols) + " |" for r in rows]
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--queries", type=int, default=256)
    parser.add_argument("--k", type=int, default=50)
    parser.add_argument("--metrics", default="l2,cosine,tiled-l2")
    args = parser.parse_args(argv)
    import torch

    from diff_safety.neighbours import faiss_available

    sizes = [int(s) for s in args.sizes.split(",")]
    rows = run(sizes, args.dim, args.queries, args.k, args.metrics.split(","))
    print(
        f"{args.queries} queries, k = {args.k}, {args.dim} values per item, torch {torch.__version__}, {torch.get_num_threads()} "
        f"thread(s), faiss {'yes' if faiss_available() else 'not installed'}"
    )
    print(markdown(rows))


if __name__ == "__main__":
    main()
