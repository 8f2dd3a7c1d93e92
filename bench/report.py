"""Output of every benchmark: a table on stdout, a JSON file and, where a picture reads
better, a PNG chart, all under bench/results/."""

import json
import platform
import subprocess
import time

from artifacts import RESULTS, ROOT


def fmt(v, digits=1):
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        if abs(v) >= 1000:
            return f"{v:,.0f}"
        return f"{v:,.{digits}f}"
    return str(v)


def table(title, headers, rows):
    """A Markdown table (readable in a terminal, pasteable into a note)."""
    cells = [[fmt(c) for c in r] for r in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h)
              for i, h in enumerate(headers)]
    # text columns left, figures right
    left = [all(not isinstance(r[i], (int, float)) or isinstance(r[i], bool) for r in rows)
            for i in range(len(headers))]

    def line(vals):
        return "| " + " | ".join(v.ljust(w) if lf else v.rjust(w)
                                 for v, w, lf in zip(vals, widths, left)) + " |"

    out = [f"### {title}", "", line(headers),
           "| " + " | ".join(("-" * w) if lf else ("-" * (w - 1) + ":")
                             for w, lf in zip(widths, left)) + " |"]
    out += [line(r) for r in cells]
    text = "\n".join(out) + "\n"
    print(text)
    return text


def git_rev():
    try:
        r = subprocess.run(["git", "-C", str(ROOT), "describe", "--always", "--dirty"],
                           capture_output=True, text=True, timeout=10)
        return r.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def write(name, data, tables=()):
    """bench/results/NAME.json (with when and on what it ran) and NAME.md (the tables)."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    doc = {"benchmark": name, "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
           "git": git_rev(), "host": platform.platform(), **data}
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(doc, indent=2) + "\n")
    if tables:
        (RESULTS / f"{name}.md").write_text("\n".join(tables))
    print(f"wrote {path}")
    return path


def bar_chart(name, title, ylabel, labels, series, log=False, lines=()):
    """Grouped bars, one group per label, one bar per series {name: [value or None]}, and
    horizontal reference lines [(value, label)]. Returns the PNG path, or None when
    matplotlib is not installed."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("(no chart: matplotlib is not installed; pip install -r bench/requirements.txt)")
        return None
    RESULTS.mkdir(parents=True, exist_ok=True)
    n = len(series)
    width = 0.8 / max(n, 1)
    fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(labels) + 2), 4.5))
    for k, (sname, vals) in enumerate(series.items()):
        xs = [i + (k - (n - 1) / 2) * width for i in range(len(labels))]
        pts = [(x, v) for x, v in zip(xs, vals) if v is not None]
        bars = ax.bar([p[0] for p in pts], [p[1] for p in pts], width, label=sname)
        ax.bar_label(bars, labels=[fmt(p[1], 0) for p in pts], fontsize=7, rotation=90,
                     padding=2)
    for k, (value, label) in enumerate(lines):
        ax.axhline(value, color="0.3", linestyle=("--", ":", "-.")[k % 3], linewidth=1,
                   label=label)
    ax.set_xticks(range(len(labels)))
    ax.set_xticklabels(labels, rotation=20, ha="right", fontsize=8)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    if log:
        ax.set_yscale("log")
    ax.margins(y=0.25)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = RESULTS / f"{name}.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    print(f"wrote {path}")
    return path
