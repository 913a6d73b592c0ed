"""Rendering a tour's results as one self-contained HTML page (no server, no JavaScript)."""

from __future__ import annotations

import html
import math
import re

from diffcore.tour import SectionResult, _Metric, _Picture, _slug, _Table, _Text

_CSS = """
:root { --fg: #1d2330; --muted: #667085; --line: #e4e7ec; --card: #ffffff; --bg: #f6f7f9;
        --accent: #3b5bdb; --ok: #2b8a3e; --bad: #c92a2a; --warn: #b7791f; }
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--fg); line-height: 1.55;
       font: 15px/1.55 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", sans-serif; }
main { max-width: 1180px; margin: 0 auto; padding: 28px 20px 60px; }
header h1 { margin: 0 0 4px; font-size: 28px; letter-spacing: -0.01em; }
header .meta { color: var(--muted); font-size: 14px; }
.plugins { margin: 10px 0 0; padding: 0; list-style: none; display: flex; flex-wrap: wrap; gap: 6px; }
.plugins li { background: var(--card); border: 1px solid var(--line); border-radius: 999px; padding: 2px 10px; font-size: 13px; }
.plugins li.bad { border-color: var(--bad); color: var(--bad); }
nav { margin: 18px 0 8px; background: var(--card); border: 1px solid var(--line); border-radius: 10px; padding: 10px 16px; }
nav ol { margin: 0; padding-left: 20px; }
nav a { color: var(--accent); text-decoration: none; }
.badge { display: inline-block; font-size: 12px; font-weight: 600; border-radius: 4px; padding: 0 6px; margin-left: 6px; color: #fff; }
.badge.ok { background: var(--ok); } .badge.failed { background: var(--bad); } .badge.skipped { background: var(--warn); }
.time { color: var(--muted); font-size: 13px; margin-left: 6px; }
section { background: var(--card); border: 1px solid var(--line); border-radius: 12px; padding: 18px 22px; margin: 18px 0; }
section h2 { margin: 0; font-size: 21px; }
section .summary { color: var(--muted); margin: 2px 0 12px; }
figure { margin: 14px 0; }
figure img { max-width: 100%; height: auto; border: 1px solid var(--line); border-radius: 6px; image-rendering: auto; }
figcaption { color: var(--muted); font-size: 13.5px; margin-top: 4px; }
.metrics { display: flex; flex-wrap: wrap; gap: 10px; margin: 12px 0; }
.metric { border: 1px solid var(--line); border-radius: 8px; padding: 8px 14px; min-width: 150px; }
.metric .v { font-size: 20px; font-weight: 600; font-variant-numeric: tabular-nums; }
.metric .n { color: var(--muted); font-size: 12.5px; }
table { border-collapse: collapse; font-size: 14px; margin: 6px 0; font-variant-numeric: tabular-nums; }
th, td { border-bottom: 1px solid var(--line); padding: 4px 12px; text-align: left; }
th { background: var(--bg); font-weight: 600; }
td.num, th.num { text-align: right; }
.tablewrap { overflow-x: auto; }
.caption { color: var(--muted); font-size: 13.5px; }
.error { border-left: 4px solid var(--bad); background: #fff5f5; padding: 8px 12px; border-radius: 4px; }
.error.skipped { border-color: var(--warn); background: #fffaeb; }
pre { background: #f1f3f5; padding: 10px; border-radius: 6px; overflow-x: auto; font-size: 12.5px; }
code { background: #f1f3f5; padding: 0 4px; border-radius: 4px; font-size: 0.92em; }
footer { color: var(--muted); font-size: 13px; text-align: center; margin-top: 30px; }
"""


def _inline(escaped: str) -> str:
    """``code``, **bold**, *em* and [links](url) on already escaped text."""
    parts = re.split(r"(`[^`]+`)", escaped)
    out = []
    for part in parts:
        if part.startswith("`") and part.endswith("`") and len(part) > 1:
            out.append(f"<code>{part[1:-1]}</code>")
            continue
        part = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", part)
        part = re.sub(r"(?<![\w*])\*(?!\s)(.+?)(?<!\s)\*(?![\w*])", r"<em>\1</em>", part)
        part = re.sub(r"\[([^\]]+)\]\(((?:https?://|\.{0,2}/|#)[^)\s]*|[\w./-]+)\)", r'<a href="\2">\1</a>', part)
        out.append(part)
    return "".join(out)


def markdown_html(text: str) -> str:
    """A small, safe subset of markdown -> HTML (everything is escaped first).

    >>> markdown_html("**Fast** and `exact`.\\n\\n- one\\n- two")
    '<p><strong>Fast</strong> and <code>exact</code>.</p>\\n<ul><li>one</li><li>two</li></ul>'
    """
    blocks = re.split(r"\n\s*\n", html.escape(text.strip(), quote=True))
    out = []
    for block in blocks:
        lines = [ln.strip() for ln in block.strip().splitlines()]
        if not lines or not lines[0]:
            continue
        if all(re.match(r"^[-*] ", ln) for ln in lines):
            out.append("<ul>" + "".join(f"<li>{_inline(ln[2:])}</li>" for ln in lines) + "</ul>")
        elif m := re.match(r"^(#{1,3}) (.*)$", lines[0]):
            level = len(m.group(1)) + 2
            out.append(f"<h{level}>{_inline(m.group(2))}</h{level}>")
            if lines[1:]:
                out.append(f"<p>{_inline(' '.join(lines[1:]))}</p>")
        else:
            out.append(f"<p>{_inline(' '.join(lines))}</p>")
    return "\n".join(out)


def _fmt(v) -> str:
    if isinstance(v, bool) or v is None:
        return "" if v is None else str(v)
    if isinstance(v, float):
        if math.isnan(v) or math.isinf(v):
            return str(v)
        return f"{v:.4g}" if (abs(v) >= 1e-3 or v == 0) and abs(v) < 1e6 else f"{v:.3e}"
    return str(v)


def _is_num(v) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _block_html(block) -> str:
    e = html.escape
    if isinstance(block, _Picture):
        cap = f"<figcaption>{_inline(e(block.caption))}</figcaption>" if block.caption else ""
        return f'<figure><a href="{e(block.src)}"><img src="{e(block.src)}" alt="{e(block.alt)}" loading="lazy"></a>{cap}</figure>'
    if isinstance(block, _Table):
        numeric = {c for c in block.columns if all(_is_num(r.get(c)) or r.get(c) is None for r in block.rows) and block.rows}
        head = "".join(f'<th class="{"num" if c in numeric else ""}">{e(c)}</th>' for c in block.columns)
        body = "".join(
            "<tr>" + "".join(f'<td class="{"num" if c in numeric else ""}">{e(_fmt(r.get(c)))}</td>' for c in block.columns) + "</tr>"
            for r in block.rows
        )
        cap = f'<div class="caption">{_inline(e(block.caption))} <a href="{e(block.src)}">csv</a></div>'
        return f'<div class="tablewrap"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>{cap}'
    if isinstance(block, _Text):
        return markdown_html(block.markdown)
    if isinstance(block, _Metric):
        unit = f" {e(block.unit)}" if block.unit else ""
        return f'<div class="metric"><div class="v">{e(_fmt(block.value))}{unit}</div><div class="n">{e(block.name)}</div></div>'
    raise TypeError(f"unknown report block {block!r}")  # pragma: no cover


def _section_html(r: SectionResult) -> str:
    e = html.escape
    s = r.section
    parts = [
        f'<section id="{e(_slug(s.name))}">',
        f'<h2>{e(s.name)}<span class="badge {r.status}">{r.status}</span><span class="time">{r.seconds:.1f} s</span></h2>',
        f'<div class="summary">{e(s.summary)}{" · plugin " + e(s.plugin) if s.plugin else ""}</div>',
    ]
    metrics_open = False
    for block in r.blocks:
        is_metric = isinstance(block, _Metric)
        if is_metric and not metrics_open:
            parts.append('<div class="metrics">')
        elif not is_metric and metrics_open:
            parts.append("</div>")
        metrics_open = is_metric
        parts.append(_block_html(block))
    if metrics_open:
        parts.append("</div>")
    if r.error:
        what = "skipped: a dependency is missing" if r.status == "skipped" else "this section failed"
        parts.append(f'<div class="error {r.status}"><strong>{what}</strong>: <code>{e(r.error)}</code></div>')
        if r.traceback:
            parts.append(f"<details><summary>traceback</summary><pre>{e(r.traceback)}</pre></details>")
    parts.append("</section>")
    return "\n".join(parts)


def render_html(meta: dict, results: list[SectionResult]) -> str:
    """The report page: a header (version, plugins, date, total time), contents, then sections."""
    e = html.escape
    plugins = "".join(
        f'<li class="{"bad" if p.get("error") else ""}" title="{e(p.get("error") or p.get("module") or "")}">{e(p["name"])} '
        f"{e(p.get('version') or '')}{' (skipped)' if p.get('error') else ''}</li>"
        for p in meta["plugins"]
    )
    toc = "".join(
        f'<li><a href="#{e(_slug(r.section.name))}">{e(r.section.name)}</a><span class="badge {r.status}">{r.status}</span><span '
        f'class="time">{r.seconds:.1f} s</span></li>'
        for r in results
    )
    n_bad = sum(r.status != "ok" for r in results)
    status = f"{len(results)} sections" + (f", {n_bad} not ok" if n_bad else "")
    quick = " · quick run" if meta.get("quick") else ""
    body = "\n".join(_section_html(r) for r in results) or "<p>No tour sections are registered.</p>"
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>diffcore tour</title>
<style>{_CSS}</style>
</head>
<body>
<main>
<header>
<h1>diffcore tour</h1>
<div class="meta">diffcore {e(meta["version"])} · {e(meta["created"])} · {meta["seconds"]:.1f} s in total · {status}{quick}</div>
<ul class="plugins">{plugins}</ul>
</header>
<nav><ol>{toc}</ol></nav>
{body}
<footer>Written by <code>diffcore tour</code>. Pictures and tables (CSV) sit in one folder per section next to this page;
report.json holds the numbers.</footer>
</main>
</body>
</html>
"""
