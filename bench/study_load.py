"""Load benchmark of the study app through the real server: N raters as websocket clients of `spade-study serve`.

Each simulated rater speaks Streamlit's own protocol over `/_stcore/stream`, as the browser
does (protobuf `BackMsg` with the widget states and the clicked button, `ForwardMsg` deltas
back), and fetches every picture of a page over HTTP. It goes through the whole flow:
consent (tick, then Continue), instructions, practice with its feedback pages, every task,
the end page. A real browser (Playwright) per rater would put 50 chromium renderers on the
same 2 cores as the server and measure chromium, not the app; `--browsers N` adds N real
headless chromium raters (study.browser.drive_rater) next to the websocket ones to
check that both see the same latencies.

Measured per transition, from the click being sent:
- `rendered`: the new page is on screen: the last element of its first script run arrived and
  every picture of the page was fetched; this is "click-to-next-task-rendered";
- `first_paint`: the new page's heading arrived (what the rater first sees change);
- `settled`: the last run of the page finished (with a minimum viewing time, the rerun that
  enables the answer buttons comes that much later; a rater cannot answer before it).
Reported separately for task -> task transitions (the goal) and for all transitions.
Afterwards the database is audited (bench/study_bench.audit): answers clicked vs stored,
lost, duplicated, the policy's invariants. The server's RSS and CPU are sampled every 0.5 s.

    .venv/bin/python bench/study_load.py --raters 50 --arrival 60     # a launch: 50 raters over 60 s
    .venv/bin/python bench/study_load.py --raters 50 --arrival 0      # 50 raters starting at once

Bounded: at most --raters clients, and --max-seconds for the whole run (clients still
running then are stopped and reported as unfinished). A run starts from a fresh bundle
and database in a temporary folder: the measurement is the run, nothing to resume.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import websockets
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from tqdm import tqdm

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from study.config import load_config  # noqa: E402
from study.examples import make_bundle, write_config  # noqa: E402
from study.invites import create_invites  # noqa: E402
from study_bench import audit, percentile  # noqa: E402

ID_PREFIX = "$$ID-"
STEP_TIMEOUT_S = 120.0  # one page that takes longer than this counts as a failed rater


@dataclass
class Page:
    """What one script run put on the page: headings, widgets by key, picture URLs, code blocks."""

    headings: list[str] = field(default_factory=list)
    widgets: dict[str, tuple[str, str, bool]] = field(default_factory=dict)  # key -> (widget id, kind, disabled)
    images: list[str] = field(default_factory=list)
    codes: list[str] = field(default_factory=list)

    def stage(self) -> str:
        """The page's stage, by the same rules as study.browser._STAGE_SELECTORS."""
        h = " ".join(self.headings)
        keys = list(self.widgets)
        if "Thank you" in h:
            return "done"
        if "Cannot continue" in h:
            return "refused"
        if "You chose not to take part" in h:
            return "declined"
        if "consent-continue" in keys:
            return "consent"
        if "instr-done" in keys:
            return "instructions"
        if any(k.startswith("practice-next-") for k in keys):
            return "practice_feedback"
        if any(k.startswith("practice-") and k.endswith("-A") for k in keys):
            return "practice"
        if any(k.startswith("task-") and k.endswith("-A") for k in keys):
            return "task"
        if any(k.startswith("break-") for k in keys):
            return "break"
        return "unknown"

    def key(self, prefix: str, suffix: str = "") -> str:
        """The first widget key with this prefix (and suffix)."""
        return next(k for k in self.widgets if k.startswith(prefix) and k.endswith(suffix))


def widget_key(widget_id: str) -> str:
    """The user key inside a Streamlit widget id (`$$ID-<32 hex>-<key>`)."""
    return widget_id[len(ID_PREFIX) + 33:] if widget_id.startswith(ID_PREFIX) else widget_id


class Rater:
    """One rater: a websocket session that clicks through the study like the browser's frontend."""

    def __init__(self, base: str, token: str, rng: random.Random, think: tuple[float, float], fetch_pool: ThreadPoolExecutor):
        self.base, self.token, self.rng, self.think, self.pool = base, token, rng, think, fetch_pool
        self.query = f"token={token}"
        self.values: dict[str, bool] = {}  # non-trigger widget values the frontend keeps sending (the consent tick)
        self.samples: list[dict] = []
        self.clicked: list[tuple[int, str]] = []  # (assignment_id, choice) of every task answer sent
        self.code: str | None = None
        self.error: str | None = None
        self.broken_pictures = 0  # picture URLs that answered with an error (e.g. 404: already released)

    async def _run_page(self, ws: object, trigger: str | None, started: float) -> tuple[Page, float, float, float]:
        """Send one rerun (optionally with a clicked button) and read it to the end; fetch the page's pictures
        as their URLs arrive. Return the page (widgets in their latest state) and, in seconds after
        `started`: the first heading, the page shown (the first run's last element arrived and its
        pictures fetched) and the page settled (the last run finished: after the minimum viewing
        time, the run that enables the answer buttons)."""
        msg = BackMsg()
        msg.rerun_script.query_string = self.query
        for wid, value in self.values.items():
            w = msg.rerun_script.widget_states.widgets.add()
            w.id, w.bool_value = wid, value
        if trigger is not None:
            w = msg.rerun_script.widget_states.widgets.add()
            w.id, w.trigger_value = trigger, True
        await ws.send(msg.SerializeToString())  # type: ignore[attr-defined]
        loop = asyncio.get_running_loop()
        page, first, runs, shown_at = Page(), None, 0, None
        last_delta, fetches = started, []
        while True:
            fm = ForwardMsg()
            fm.ParseFromString(await asyncio.wait_for(ws.recv(), STEP_TIMEOUT_S))  # type: ignore[attr-defined]
            kind = fm.WhichOneof("type")
            now = time.perf_counter()
            if kind == "script_finished" and (runs == 0 or last_delta == started):
                continue  # the end of a run that started before this click, or one that drew nothing
            if kind == "new_session":
                runs += 1
                if runs == 2 and shown_at is None:
                    shown_at = last_delta  # a rerun started: the first run's page was complete
            elif kind == "page_info_changed":
                self.query = fm.page_info_changed.query_string
            elif kind == "delta" and fm.delta.WhichOneof("type") == "new_element":
                if shown_at is None:
                    last_delta = now
                el = fm.delta.new_element
                ek = el.WhichOneof("type")
                urls: list[str] = []
                if ek == "heading":
                    page.headings.append(el.heading.body)
                    if first is None:
                        first = now - started
                elif ek in ("button", "checkbox", "download_button"):
                    w = getattr(el, ek)
                    page.widgets[widget_key(w.id)] = (w.id, ek, w.disabled)
                elif ek == "imgs":
                    urls = [img.url for img in el.imgs.imgs]
                elif ek == "code":
                    page.codes.append(el.code.code_text)
                elif ek == "markdown" and "<img " in el.markdown.body:
                    # Task pictures at their stable URLs (study/pictures.py) come as <img src=...> in Markdown.
                    urls = [part.split('"', 1)[0] for part in el.markdown.body.split('src="')[1:]]
                for u in urls:
                    if u not in page.images:
                        page.images.append(u)
                        if shown_at is None:
                            fetches.append(loop.run_in_executor(self.pool, self._fetch, u))
            elif kind == "script_finished":
                if shown_at is None:
                    shown_at = last_delta
                if fm.script_finished != ForwardMsg.FINISHED_EARLY_FOR_RERUN:
                    break
                # A run ended by st.rerun (e.g. the minimum viewing time is over): read the next run too.
        settled = time.perf_counter() - started
        fetched = [await f for f in fetches]
        shown = max([shown_at] + [t for _, t in fetched]) - started
        return page, (first if first is not None else settled), shown, settled

    def _fetch(self, url: str) -> tuple[int, float]:
        """GET one picture; return its size (-1: it failed, as a broken picture in a browser) and when."""
        full = url if url.startswith("http") else self.base + ("" if url.startswith("/") else "/") + url
        try:
            with urllib.request.urlopen(full, timeout=STEP_TIMEOUT_S) as resp:
                return len(resp.read()), time.perf_counter()
        except OSError:
            self.broken_pictures += 1
            return -1, time.perf_counter()

    async def run(self, deadline: float, bar: tqdm) -> None:
        """Go from the link to the end page; record one sample per click."""
        try:
            async with websockets.connect(self.base.replace("http", "ws", 1) + "/_stcore/stream", subprotocols=["streamlit"],
                                          max_size=None, open_timeout=STEP_TIMEOUT_S) as ws:
                page, *_ = await self._run_page(ws, None, time.perf_counter())
                while time.monotonic() < deadline:
                    stage = page.stage()
                    if stage == "done":
                        self.code = page.codes[0] if page.codes else ""
                        return
                    if stage in ("refused", "declined", "unknown"):
                        self.error = f"stopped at a {stage} page: {page.headings}"
                        return
                    if stage == "consent" and not self.values:
                        self.values[page.widgets["consent-agree"][0]] = True  # ticking the box is a rerun too
                        page, *_ = await self._run_page(ws, None, time.perf_counter())
                        continue
                    if stage == "consent":
                        key = "consent-continue"
                    elif stage == "instructions":
                        key = "instr-done"
                    elif stage == "practice_feedback":
                        key = page.key("practice-next-")
                    elif stage == "practice":
                        key = page.key("practice-", "-A")
                    elif stage == "break":
                        key = page.key("break-")
                    else:
                        await asyncio.sleep(self.rng.uniform(*self.think))
                        choice = self.rng.choice(["A", "B", "undecided"])
                        key = page.key("task-", "-A")[: -len("A")] + choice
                        if page.widgets[key][2]:
                            self.error = "the answer buttons were still disabled after the page settled"
                            return
                        self.clicked.append((int(key.split("-")[1]), choice))
                    if stage == "consent":
                        self.values = {}  # the consent form is gone after Continue
                    t0 = time.perf_counter()
                    page, first, shown, settled = await self._run_page(ws, page.widgets[key][0], t0)
                    self.samples.append({"from": stage, "to": page.stage(), "first_paint_ms": first * 1000,
                                         "rendered_ms": shown * 1000, "settled_ms": settled * 1000, "images": len(page.images)})
                    if stage == "task":
                        bar.update(1)
                self.error = "stopped by --max-seconds"
        except Exception as exc:  # noqa: BLE001 - a failed rater is a result to report, not a crash of the benchmark
            self.error = f"{type(exc).__name__}: {exc}"


# --------------------------------------------------------------------------- server
def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(bundle: Path, db: Path, config: Path, port: int, log: Path) -> subprocess.Popen:
    """Start `spade-study serve` on loopback (own process group) and wait until it is healthy."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "spade_study", "serve", str(bundle), "--db", str(db), "--config", str(config), "--port", str(port)],
        cwd=REPO, env={**os.environ, "SPADE_STUDY_ADMIN_PASSWORD": "bench"}, stdout=log.open("w"), stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"error: the study server exited with code {proc.returncode}: see {log}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2):
                return proc
        except OSError:
            time.sleep(0.3)
    stop_server(proc)
    raise SystemExit("error: the study server did not become healthy within 120 s")


def stop_server(proc: subprocess.Popen) -> None:
    """Stop the server's process group (spade-study and the Streamlit process it started)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
            proc.wait(timeout=20)
            return
        except ProcessLookupError:
            return
        except subprocess.TimeoutExpired:
            continue


class ServerSampler(threading.Thread):
    """Sample the RSS and CPU of the server's process tree every `every` seconds."""

    def __init__(self, pid: int, every: float = 0.5):
        super().__init__(daemon=True)
        self.root, self.every = psutil.Process(pid), every
        self.rss_mb: list[float] = []
        self.cpu_s0 = self.cpu_s1 = 0.0
        self.stop = threading.Event()

    def _tree(self) -> list[psutil.Process]:
        try:
            return [self.root, *self.root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def _cpu(self) -> float:
        total = 0.0
        for p in self._tree():
            try:
                t = p.cpu_times()
                total += t.user + t.system
            except psutil.NoSuchProcess:
                pass
        return total

    def run(self) -> None:
        self.cpu_s0 = self._cpu()
        while not self.stop.wait(self.every):
            rss = 0
            for p in self._tree():
                try:
                    rss += p.memory_info().rss
                except psutil.NoSuchProcess:
                    pass
            self.rss_mb.append(rss / 2**20)
            self.cpu_s1 = self._cpu()


# --------------------------------------------------------------------------- browsers
# Timed inside the page (no Playwright round trips): from the click to the next task's fresh answer
# buttons and all four of its pictures loaded; -1 when the click led elsewhere (the end page).
_CLICK_TO_NEXT_TASK = """([sel, old]) => new Promise((resolve) => {
  const t0 = performance.now();
  document.querySelector(sel).click();
  const tick = () => {
    const btn = document.querySelector("[class*='st-key-task-'][class*='-A'] button");
    const fresh = btn && !btn.closest("." + old);
    const imgs = Array.from(document.querySelectorAll(".st-key-trial img"));
    if (fresh && imgs.length >= 4 && imgs.every((i) => i.complete && i.naturalWidth > 0)) resolve(performance.now() - t0);
    else if (/Thank you/.test(document.querySelector("h1")?.innerText || "")) resolve(-1);
    else if (performance.now() - t0 > 120000) resolve(-2);
    else requestAnimationFrame(tick);
  };
  requestAnimationFrame(tick);
})"""


def run_browsers(base: str, urls: list[str], out: list[dict], errors: list[str]) -> None:
    """Drive real headless chromium raters (one context each, one after another) and time their
    task-to-task clicks inside the page."""
    from playwright.sync_api import sync_playwright

    from study.browser import click_key, launch_chromium, next_action

    with sync_playwright() as p:
        browser = launch_chromium(p)
        for url in urls:
            ctx = browser.new_context(viewport={"width": 1280, "height": 800})
            page = ctx.new_page()
            try:
                page.goto(url)
                for _ in range(200):
                    stage, key = next_action(page, choose=lambda n: "A")
                    if key is None:
                        break
                    if stage != "task":
                        click_key(page, key)
                        continue
                    page.locator(f".st-key-{key} button:not([disabled])").wait_for(timeout=60_000)  # minimum viewing time
                    ms = page.evaluate(_CLICK_TO_NEXT_TASK, [f".st-key-{key} button", f"st-key-{key}"])
                    if ms >= 0:
                        out.append({"from": "task", "to": "task", "rendered_ms": ms})
                    page.locator(f".st-key-{key}").wait_for(state="detached", timeout=60_000)
            except Exception as exc:  # noqa: BLE001
                errors.append(f"browser rater: {type(exc).__name__}: {exc}")
            ctx.close()
        browser.close()


# --------------------------------------------------------------------------- the run
def quantiles(values: list[float]) -> dict:
    """p50 / p95 / p99 / max of a list of milliseconds (empty: None)."""
    if not values:
        return {"n": 0}
    return {"n": len(values), **{f"p{q}": round(percentile(values, q)) for q in (50, 95, 99)}, "max": round(max(values))}


async def drive(raters: list[Rater], arrival: float, deadline: float, bar: tqdm) -> None:
    """Start the raters spread evenly over `arrival` seconds (0: all at once) and wait for all."""
    async def delayed(i: int, r: Rater) -> None:
        if arrival > 0 and len(raters) > 1:
            await asyncio.sleep(arrival * i / (len(raters) - 1))
        await r.run(deadline, bar)

    await asyncio.gather(*(delayed(i, r) for i, r in enumerate(raters)))


def run(args: argparse.Namespace) -> dict:
    """One run on a fresh bundle and database; return the report."""
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        print(f"building a {args.items}-item bundle from the ImageNet sample ...", file=sys.stderr)
        bundle = make_bundle(tmp / "bundle", n_items=args.items)
        cfg_path = write_config(tmp / "study.toml", identity="invite", tasks_per_rater=args.tasks, catch_per_rater=args.catch,
                                ratings_per_task=args.k, practice_min_correct=1, **json.loads(args.config_extra))
        cfg = load_config(cfg_path)
        db, port = tmp / "study.db", args.port or free_port()
        base = f"http://127.0.0.1:{port}"
        proc = start_server(bundle, db, cfg_path, port, tmp / "server.log")
        try:
            invites = create_invites(db, args.raters + args.browsers, base + "/")
            sampler = ServerSampler(proc.pid)
            sampler.start()
            pool = ThreadPoolExecutor(max_workers=64)
            raters = [Rater(base, inv.token, random.Random(i), tuple(args.think), pool) for i, inv in enumerate(invites[: args.raters])]
            browser_samples: list[dict] = []
            browser_errors: list[str] = []
            browser_thread = None
            if args.browsers:
                browser_thread = threading.Thread(target=run_browsers, args=(base, [i.url for i in invites[args.raters:]], browser_samples, browser_errors))
                browser_thread.start()
            load0 = os.getloadavg()
            bar = tqdm(total=args.raters * cfg.tasks_total, desc="task answers", unit="answer")
            t0 = time.perf_counter()
            asyncio.run(drive(raters, args.arrival, time.monotonic() + args.max_seconds, bar))
            wall = time.perf_counter() - t0
            bar.close()
            if browser_thread is not None:
                browser_thread.join(timeout=args.max_seconds)
            load1 = os.getloadavg()
            sampler.stop.set()
            sampler.join()
            pool.shutdown()
            server_log = (tmp / "server.log").read_text(errors="replace")
            if "Traceback" in server_log:
                kept = args.out.with_suffix(".server.log")
                kept.parent.mkdir(parents=True, exist_ok=True)
                kept.write_text(server_log)
                print(f"the server logged exceptions: {kept}", file=sys.stderr)
        finally:
            stop_server(proc)
        submitted = {inv.rater_id: r.clicked for inv, r in zip(invites, raters)}
        result = audit(db, submitted, cfg)
    samples = [s for r in raters for s in r.samples]
    task_to_task = [s for s in samples if s["from"] == "task" and s["to"] == "task"]
    cpu_s = sampler.cpu_s1 - sampler.cpu_s0
    return {
        "args": {k: (list(v) if isinstance(v, tuple) else str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "loadavg_before": [round(x, 2) for x in load0], "loadavg_after": [round(x, 2) for x in load1],
        "wall_s": round(wall, 1),
        "raters_finished": sum(r.code is not None for r in raters),
        "rater_errors": sorted({r.error for r in raters if r.error})[:5],
        "broken_pictures": sum(r.broken_pictures for r in raters),
        "task_to_task_ms": {"rendered": quantiles([s["rendered_ms"] for s in task_to_task]),
                            "settled": quantiles([s["settled_ms"] for s in task_to_task]),
                            "first_paint": quantiles([s["first_paint_ms"] for s in task_to_task])},
        "all_transitions_rendered_ms": quantiles([s["rendered_ms"] for s in samples]),
        "browser_task_to_task_ms": quantiles([s["rendered_ms"] for s in browser_samples if s["to"] == "task"]),
        "browser_errors": browser_errors[:3],
        "server": {"rss_mb_max": round(max(sampler.rss_mb, default=0)), "cpu_s": round(cpu_s, 1),
                   "cpu_cores_mean": round(cpu_s / wall, 2) if wall else None,
                   # CPU time is the load-independent cost: a loaded machine stretches wall time, not this.
                   "cpu_ms_per_transition": round(1000 * cpu_s / max(1, len(samples)), 1)},
        "server_exceptions": server_log.count("Traceback"),
        **{k: v for k, v in result.items() if k != "problems"}, "problems": result["problems"][:10],
    }


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; print the JSON report and a Markdown row for bench/README.md."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--raters", type=int, default=50, help="websocket raters (at most 200)")
    p.add_argument("--arrival", type=float, default=60.0, help="raters start evenly spread over this many seconds (0: all at once)")
    p.add_argument("--think", type=float, nargs=2, default=(2.0, 6.0), metavar=("MIN_S", "MAX_S"),
                   help="time a rater looks at a task before answering, uniform in [MIN_S, MAX_S]")
    p.add_argument("--items", type=int, default=100)
    p.add_argument("--tasks", type=int, default=31, help="main tasks per rater")
    p.add_argument("--catch", type=int, default=3)
    p.add_argument("--k", type=int, default=2)
    p.add_argument("--browsers", type=int, default=0, help="also drive this many real chromium raters, one after another")
    p.add_argument("--config-extra", default="{}", help='extra [study] keys as JSON, e.g. \'{"min_view_ms": 0}\'')
    p.add_argument("--max-seconds", type=float, default=900.0, help="stop every client after this long")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--out", type=Path, default=REPO / "bench" / "out" / "study_load.json")
    args = p.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # unwind: the server's process group is stopped in `run`
    if not 1 <= args.raters <= 200:
        print("error: --raters must be between 1 and 200", file=sys.stderr)
        return 2
    if args.think[0] < 0 or args.think[1] < args.think[0]:
        print("error: --think MIN MAX needs 0 <= MIN <= MAX", file=sys.stderr)
        return 2
    try:
        json.loads(args.config_extra)
    except ValueError:
        print("error: --config-extra must be a JSON object", file=sys.stderr)
        return 2
    report = run(args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    r = report["task_to_task_ms"]["rendered"]
    goal = 1000 if args.arrival == 0 else 300
    ok = (report["lost"] == 0 and report["duplicated"] == 0 and not report["problems"]
          and report["raters_finished"] == args.raters and r.get("p95", 1e9) <= goal)
    print(
        f"| {args.raters} over {args.arrival:g} s | {args.think[0]:g}-{args.think[1]:g} s | {r.get('p50')} / {r.get('p95')} / {r.get('p99')} / {r.get('max')} "
        f"| {report['raters_finished']}/{args.raters} | {report['responses']} | {report['lost']} | {report['duplicated']} "
        f"| {'yes' if not report['problems'] else 'NO'} | {report['server']['rss_mb_max']} MB | {report['server']['cpu_cores_mean']} "
        f"| {report['loadavg_before'][0]}-{report['loadavg_after'][0]} | {'PASS' if ok else f'over {goal} ms' if r.get('p95', 1e9) > goal else 'FAIL'} |"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
