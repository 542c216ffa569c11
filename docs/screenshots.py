"""The screenshots of docs/img/, made from the real MLflow UI on this project's store.

    make screenshots        (= python docs/screenshots.py)

Starts `mlflow ui` on a copy of the store (127.0.0.1, a free port), drives a headless Chromium
through the Chrome DevTools Protocol (aiohttp's websocket client, installed with DVC: no browser
driver package) and writes one PNG per view the README and docs/tracking.md show. Needs a
Chromium or Chrome on PATH (Debian: apt-get install chromium); says so and exits 3 without one.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from urllib.parse import quote

ROOT = Path(__file__).resolve().parents[1]
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "chrome")
EXIT_NO_BROWSER = 3
DEMO = "sinernn-tune-demo"  # make tune-demo's experiment (the Makefile's -S mlflow.experiment=...)
SHOTS = ["runs", "chart", "study"]


def find_browser() -> str | None:
    return next((path for path in map(shutil.which, BROWSERS) if path), None)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for(url: str, timeout: float, process: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"the server stopped (exit {process.returncode}) before {url} answered")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f} s")


class Page:
    """One browser tab over the DevTools protocol: navigate, run JavaScript, wait, capture."""

    def __init__(self, socket_):
        self.socket, self.next_id = socket_, 0

    async def send(self, method: str, timeout: float = 60, **params):
        self.next_id += 1
        await self.socket.send_json({"id": self.next_id, "method": method, "params": params})
        try:
            return await asyncio.wait_for(self._reply(method, self.next_id), timeout)
        except asyncio.TimeoutError:
            raise RuntimeError(f"{method}: no answer from the browser in {timeout:.0f} s") from None

    async def _reply(self, method: str, wanted: int):
        async for message in self.socket:
            reply = json.loads(message.data)
            if reply.get("id") == wanted:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply["result"]
        raise RuntimeError(f"{method}: the browser closed the connection")

    async def evaluate(self, script: str):
        result = await self.send("Runtime.evaluate", expression=script, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"script failed: {result['exceptionDetails'].get('text')}: {script[:200]}")
        return result["result"].get("value")

    async def wait_text(self, text: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if await self.evaluate(f"document.body && document.body.innerText.includes({json.dumps(text)})"):
                return
            await asyncio.sleep(0.25)
        raise RuntimeError(f"the page never showed {text!r}")

    async def click(self, find: str, what: str) -> None:
        """A real mouse click (press and release, as Radix and antd menus expect) on the centre of
        the element the JavaScript expression `find` returns."""
        box = await self.evaluate(f"""(() => {{
            const hit = {find};
            if (!hit) return null;
            hit.scrollIntoView({{block: 'center'}});
            const r = hit.getBoundingClientRect();
            return [r.x + r.width / 2, r.y + r.height / 2];
        }})()""")
        if not box:
            raise RuntimeError(f"nothing to click: {what}")
        for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
            await self.send("Input.dispatchMouseEvent", type=kind, x=box[0], y=box[1], button="left", clickCount=1)
        await asyncio.sleep(0.5)

    async def click_text(self, text: str, selector: str = "*") -> None:
        """Click the innermost visible element (of `selector`) that reads exactly `text`."""
        visible = f"[...document.querySelectorAll({json.dumps(selector)})].filter(e => e.offsetParent !== null)"
        await self.click(f"{visible}.filter(e => e.innerText && e.innerText.trim() === {json.dumps(text)}).pop()", repr(text))

    async def capture(self, path: Path) -> None:
        shot = await self.send("Page.captureScreenshot", format="png")
        path.write_bytes(base64.b64decode(shot["data"]))


class Browser:
    """A headless Chromium with its DevTools port on 127.0.0.1, in a throwaway profile; stopped
    (its whole process group) and its profile removed however the block ends."""

    def __init__(self, executable: str, width: int = 1600, height: int = 1000):
        self.executable, self.width, self.height = executable, width, height
        self.process = self.http = self.socket = None

    async def __aenter__(self) -> Page:
        self.profile = tempfile.mkdtemp(prefix="sinernn-browser-")
        try:
            return await self._start()
        except BaseException:
            await self.__aexit__()
            raise

    async def _start(self) -> Page:
        import aiohttp

        self.process = subprocess.Popen(
            [self.executable, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0", f"--user-data-dir={self.profile}",
             f"--window-size={self.width},{self.height}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        port_file = Path(self.profile) / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while not port_file.is_file() or not port_file.read_text().strip():
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise RuntimeError(f"{self.executable} did not start its DevTools endpoint")
            await asyncio.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=5) as reply:
            target = next(t for t in json.load(reply) if t["type"] == "page")
        self.http = aiohttp.ClientSession()
        self.socket = await self.http.ws_connect(target["webSocketDebuggerUrl"], max_msg_size=0)
        page = Page(self.socket)
        await page.send("Emulation.setDeviceMetricsOverride", width=self.width, height=self.height,
                        deviceScaleFactor=1, mobile=False)
        return page

    async def __aexit__(self, *exc) -> None:
        try:
            if self.socket is not None:
                await self.socket.close()
            if self.http is not None:
                await self.http.close()
        finally:
            if self.process is not None:
                stop_group(self.process)
            shutil.rmtree(self.profile, ignore_errors=True)


def stop_group(process: subprocess.Popen) -> None:
    """SIGTERM to the process group (a browser's renderers, a server's workers), SIGKILL after 10 s."""
    for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
        try:
            os.killpg(process.pid, sig)
            process.wait(wait)
            return
        except ProcessLookupError:
            return
        except subprocess.TimeoutExpired:
            continue


def hide_superseded_runs(store_uri: str, project: Path, experiment_name: str) -> None:
    """Each model once: in the copy, delete the training runs that no models/*/*/train.json names
    (earlier trainings of the same models, when the store has seen several `dvc repro`)."""
    from mlflow import MlflowClient

    current = {json.loads(path.read_text()).get("mlflow_run_id") for path in project.glob("models/*/*/train.json")}
    client = MlflowClient(store_uri)
    experiment = client.get_experiment_by_name(experiment_name)
    if not current or experiment is None:
        return
    for run in client.search_runs([experiment.experiment_id], "tags.stage = 'train'", max_results=50_000):
        if run.info.run_id not in current:
            client.delete_run(run.info.run_id)


class MlflowUI:
    """`mlflow ui` on a copy of a SQLite store (the original is never written), 127.0.0.1 only."""

    def __init__(self, store: Path, artifacts: Path, experiment: str):
        self.store, self.artifacts, self.experiment = store, artifacts, experiment

    def __enter__(self) -> str:
        self.folder, self.process = tempfile.mkdtemp(prefix="sinernn-ui-"), None
        try:
            return self._start()
        except BaseException:
            self.__exit__()
            raise

    def _start(self) -> str:
        copy = Path(self.folder) / "mlflow.db"
        if shutil.which("sqlite3"):  # a consistent copy, even of a store being written
            subprocess.run(["sqlite3", str(self.store), f".backup {copy}"], check=True)
        else:
            shutil.copy(self.store, copy)
        hide_superseded_runs(f"sqlite:///{copy}", self.store.resolve().parent, self.experiment)
        port = free_port()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", f"sqlite:///{copy}",
             "--default-artifact-root", self.artifacts.as_uri(), "--host", "127.0.0.1", "--port", str(port),
             "--workers", "1"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        url = f"http://127.0.0.1:{port}"
        wait_for(f"{url}/health", 90, self.process)
        return url

    def __exit__(self, *exc) -> None:
        if self.process is not None:
            stop_group(self.process)
        shutil.rmtree(self.folder, ignore_errors=True)


async def choose(page: Page, label: str, option: str) -> None:
    """In the open dialog, pick one option of the select box under `label` by typing and clicking it."""
    find = f"""(() => {{
        const dialog = document.querySelector('[role=dialog]');
        const title = [...dialog.querySelectorAll('*')].filter(e => e.innerText && e.innerText.trim() === {json.dumps(label)}).pop();
        return [...dialog.querySelectorAll('input')].find(i => title.compareDocumentPosition(i) & Node.DOCUMENT_POSITION_FOLLOWING);
    }})()"""
    await page.click(find, f"the {label} box")
    await page.send("Input.insertText", text=option)
    await asyncio.sleep(0.5)
    await page.click_text(option, "[role=option], [role=option] *")
    await escape(page)  # close the list: it covers the boxes below it


async def escape(page: Page) -> None:
    for kind in ("keyDown", "keyUp"):
        await page.send("Input.dispatchKeyEvent", type=kind, key="Escape", code="Escape", windowsVirtualKeyCode=27)
    await asyncio.sleep(0.3)


async def open_runs(page: Page, url: str, experiment_id: str, search: str, order_by: str | None = None,
                    row: str = "train-") -> None:
    """The experiment's runs in the Model training view, filtered (and sorted), with the assistant
    panel closed."""
    await page.send("Page.navigate", url=f"{url}/#/experiments")
    await page.wait_text("Model training")
    await page.click_text("Model training")
    query = f"searchFilter={quote(search)}" + (f"&orderByKey={quote(order_by)}&orderByAsc=true" if order_by else "")
    await page.send("Page.navigate", url=f"{url}/#/experiments/{experiment_id}/runs?{query}")
    await page.wait_text("matching runs")
    await page.evaluate("document.querySelector('button[aria-label=Close]')?.click()")
    await asyncio.sleep(1)
    await page.wait_text(row)  # the table again, after the panel closed


async def parallel_chart(page: Page, params: list[str], metric: str) -> None:
    """On an open runs page: the chart view, a new parallel-coordinates chart of params and metric."""
    await page.evaluate("[...document.querySelectorAll('label')].filter(e => e.offsetParent !== null)[1].click()")
    await page.wait_text("Add chart")
    # the charts show the first 10 runs unless told otherwise (a study has more)
    await page.click("document.querySelector('[data-testid=experiment-view-runs-visibility-column-header]')", "visibility")
    await page.click_text("Show all runs", "[role=menuitemradio]")
    await page.click("document.querySelector('[data-testid=experiment-view-compare-runs-add-chart]')", "Add chart")
    await page.click_text("Parallel coordinates", "[role=menuitem]")
    await page.wait_text("Add new chart")
    for param in params:
        await choose(page, "Params", param)
    await choose(page, "Metrics", metric)
    await asyncio.sleep(1.5)


async def shoot(url: str, main: str, demo: str | None, dataset: str, out: Path, shots: list[str]) -> list[Path]:
    """The views docs/tracking.md shows; main, demo: the experiments' ids."""
    written = []
    search = f'tags.stage = "train" and tags.dataset = "{dataset}"'
    async with Browser(find_browser()) as page:
        if "runs" in shots:  # one row per trained model: its dataset, source, scores and params
            await open_runs(page, url, main, search, order_by="metrics.`log10_test_mse`")
            for column in ("log10_test_mse", "log10_rollout_mse_1000", "train.lr", "arch.hidden_size"):
                await page.click("document.querySelector('[data-testid=column-selection-dropdown]')", "Columns")
                await page.send("Input.insertText", text=column)
                await asyncio.sleep(0.5)
                await page.click_text(column, "[role=dialog] *, [role=menu] *, [role=listbox] *, [role=tree] *")
                await escape(page)
            written.append(await capture(page, out / f"mlflow-runs-{dataset}.png"))
        if "chart" in shots:  # which lr and hidden size gave the best test error
            await open_runs(page, url, main, search)
            await parallel_chart(page, ["train.lr", "arch.hidden_size", "arch.num_layers", "train.grad_clip"],
                                 "log10_test_mse")
            written.append(await capture(page, out / f"mlflow-chart-{dataset}.png"))
        if "study" in shots and demo is not None:  # make tune-demo's trials
            await open_runs(page, url, demo, "attributes.run_name LIKE 'trial-%'", row="tune-clean-")
            # the trials are nested under the study's run: expand it
            await page.click("[...document.querySelectorAll('[role=row]')].find(r => r.innerText.includes('tune-clean-'))"
                             "?.querySelector('button')", "the study's + (its trials)")
            await page.wait_text("trial-")
            await parallel_chart(page, ["lr", "hidden_size", "num_layers", "grad_clip"], "log10_best_val_loss")
            written.append(await capture(page, out / "mlflow-study.png"))
    return written


async def capture(page: Page, path: Path) -> Path:
    await page.send("Input.dispatchMouseEvent", type="mouseMoved", x=0, y=0)  # no hover highlight
    await asyncio.sleep(0.5)
    await page.capture(path)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", type=Path, default=ROOT / "mlflow.db", help="the SQLite store (default: %(default)s)")
    parser.add_argument("--artifacts", type=Path, default=ROOT / "mlartifacts", help="its artifacts (default: %(default)s)")
    parser.add_argument("--params", type=Path, default=ROOT / "params.yaml",
                        help="whose mlflow.experiment to show (default: %(default)s)")
    parser.add_argument("--dataset", default="clean", help="whose training runs to show (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs/img", help="where the PNGs go (default: %(default)s)")
    parser.add_argument("--shots", nargs="+", default=SHOTS, choices=SHOTS,
                        help="which views (default: all; study needs `make tune-demo` first)")
    args = parser.parse_args(argv)
    if find_browser() is None:
        print(f"screenshots: no Chromium or Chrome on PATH (looked for {', '.join(BROWSERS)}); install one, e.g. "
              "apt-get install chromium; no screenshot taken", file=sys.stderr)
        return EXIT_NO_BROWSER
    if not args.store.is_file():
        print(f"screenshots: {args.store} not found: run `make run` (dvc repro) first", file=sys.stderr)
        return 2
    import yaml
    from mlflow import MlflowClient

    name = yaml.safe_load(args.params.read_text())["mlflow"]["experiment"]
    client = MlflowClient(f"sqlite:///{args.store.resolve()}")
    experiments = {e.name: e.experiment_id for e in client.search_experiments() if e.name in (name, DEMO)}
    if name not in experiments:
        print(f"screenshots: {args.store} has no experiment {name!r}: run `make run` first", file=sys.stderr)
        return 2
    if "study" in args.shots and DEMO not in experiments:
        print(f"screenshots: no {DEMO!r} experiment: run `make tune-demo` for the study's screenshot", file=sys.stderr)
    # Shot into a scratch folder, moved into --out only when all succeeded: never a mix of old and new.
    with tempfile.TemporaryDirectory() as scratch, MlflowUI(args.store, args.artifacts, name) as url:
        taken = asyncio.run(shoot(url, experiments[name], experiments.get(DEMO), args.dataset, Path(scratch), args.shots))
        args.out.mkdir(parents=True, exist_ok=True)
        for path in taken:
            target = args.out / path.name
            shutil.move(path, target)
            print(f"{target} ({target.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
