"""The README's MLflow UI screenshots, taken in headless Chromium from a store this script builds.

    python docs/screenshots.py            # builds /tmp/colorize-screenshots, writes docs/*.png
    python docs/screenshots.py --docs     # builds the docs site, shoots one page: docs/docs_site.png

Two short runs and a `sweep=smoke` go to a new store; `mlflow ui` serves it on a free loopback port;
headless Chromium, driven over its DevTools protocol, clicks through the UI as a user would and
shoots the run table, the chart view comparing the two runs, one run's `grids` image slider, and the
sweep's parent with its trials unfolded. tests/test_mlflow_ui.py uses the same helpers to check, in CI,
that the README's way into the experiment lands on its training runs.
"""

import argparse
import asyncio
import base64
import contextlib
import itertools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import AsyncIterator, Iterator, Optional

PROJECT = Path(__file__).resolve().parents[1]
RUNS = (["model=unet", "model.width=8", "model.depth=2"], ["model=convnet", "model.width=2"])
QUICK = ["data.limit=600", "trainer.progress=false", "tracking.grid_images=6", "tracking.grid_every=1"]
# MLflow 3.17's UI picks its GenAI or Model training view from this URL parameter, else from the
# sidebar switch (kept in the browser's localStorage, GenAI until switched), never from the
# experiment's mlflow.experimentKind tag (README, "Compare runs in the MLflow UI").
TRAINING_VIEW = "workflowType=machine_learning"
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
)
UI_START_S = 90  # mlflow ui starts in ~10 s on 2 idle cores: it migrates the store and imports its server


def chromium() -> Optional[str]:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


def train(root: Path, *overrides: str, sweep: bool = False) -> None:
    argv = [sys.executable, "-m", "colorize.train", *(["-m"] if sweep else []), f"paths.root_dir={root}", *overrides]
    result = subprocess.run(argv, capture_output=True, text=True, cwd=root, timeout=900)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed:\n{result.stderr[-3000:]}")


def store_uri(root: Path) -> str:
    return f"sqlite:///{root}/mlruns/mlflow.db"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def serve(store: str) -> Iterator[str]:
    """`mlflow ui` on the store, as the README starts it, on a free loopback port: its base URL."""
    port = free_port()
    ui = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "ui",
            "--backend-store-uri",
            store,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,  # its own group: its workers end with it
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + UI_START_S
        while True:
            if ui.poll() is not None:
                raise RuntimeError(f"mlflow ui exited: {ui.stderr.read().decode()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{base}/health", timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"mlflow ui did not answer on {base} within {UI_START_S} s") from None
                time.sleep(0.5)
        yield base
    finally:
        os.killpg(ui.pid, signal.SIGTERM)
        ui.wait(timeout=30)


class Page:
    """One Chromium tab driven over the DevTools protocol (aiohttp's websocket: mlflow depends on aiohttp)."""

    def __init__(self, socket) -> None:
        self.socket, self.ids = socket, itertools.count(1)

    async def send(self, method: str, **params):
        call = next(self.ids)
        await self.socket.send_json({"id": call, "method": method, "params": params})
        while True:  # events in between are not needed
            message = await self.socket.receive_json()
            if message.get("id") == call:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message["result"]

    async def eval(self, js: str):
        result = await self.send("Runtime.evaluate", expression=js, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{js}: {result['exceptionDetails']['text']}")
        return result["result"].get("value")

    async def wait(self, js: str, timeout: float = 60) -> None:
        """Until the expression is true: pages render long after they load (the charts a few seconds later)."""
        deadline = time.monotonic() + timeout
        while not await self.eval(f"(() => {{ try {{ return !!({js}); }} catch (e) {{ return false; }} }})()"):
            if time.monotonic() > deadline:
                raise TimeoutError(f"not true within {timeout:.0f} s: {js}\npage: {await self.text()}"[:3000])
            await asyncio.sleep(0.25)

    async def goto(self, url: str, until: str) -> None:
        """Load `url` as a new document (a hash change alone would keep the last page's DOM) and wait for `until`."""
        await self.send("Page.navigate", url="about:blank")
        await self.send("Page.navigate", url=url)
        await self.wait(until)

    async def text(self) -> str:
        return await self.eval("document.body ? document.body.innerText : ''")

    async def location(self) -> str:
        return await self.eval("location.href")

    async def click(self, selector: str, text: Optional[str] = None) -> None:
        """A real mouse click (menus open on pointer events) on the first element matching `selector`
        whose text is `text`, when given."""
        found = f"[...document.querySelectorAll({json.dumps(selector)})]"
        if text is not None:
            found += f".filter(e => e.textContent.trim() === {json.dumps(text)})"
        centre = await self.eval(
            f"(() => {{ const e = {found}[0]; if (!e) return null; e.scrollIntoView({{block: 'nearest'}});"
            " const r = e.getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; })()"
        )
        if centre is None:
            raise LookupError(f"nothing to click: {selector} {text or ''}\npage: {await self.text()}"[:3000])
        for kind in ("mousePressed", "mouseReleased"):
            await self.send(
                "Input.dispatchMouseEvent", type=kind, x=centre[0], y=centre[1], button="left", clickCount=1
            )

    async def type(self, selector: str, text: str) -> None:
        await self.eval(
            f"(() => {{ const e = document.querySelector({json.dumps(selector)}); e.focus(); e.select && e.select(); }})()"
        )
        await self.send("Input.insertText", text=text)

    async def press(self, selector: str, key: str) -> None:
        """Focus the element and press `key` (a DOM key name such as "ArrowRight")."""
        await self.eval(f"document.querySelector({json.dumps(selector)}).focus()")
        for kind in ("keyDown", "keyUp"):
            await self.send("Input.dispatchKeyEvent", type=kind, key=key, code=key)

    async def resize(self, width: int, height: int) -> None:
        await self.send(
            "Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1, mobile=False
        )

    async def screenshot(self, png: Path, clip: Optional[tuple[int, int]] = None) -> None:
        """The viewport, or its top-left `clip` (width, height) in CSS pixels."""
        region = {"clip": {"x": 0, "y": 0, "width": clip[0], "height": clip[1], "scale": 1}} if clip else {}
        png.write_bytes(base64.b64decode((await self.send("Page.captureScreenshot", format="png", **region))["data"]))


@contextlib.asynccontextmanager
async def browser(width: int = 1400, height: int = 900) -> AsyncIterator[Page]:
    """Headless Chromium with a new profile (so MLflow's UI starts as for a first-time user): its one tab."""
    import aiohttp

    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as profile:
        argv = [
            chromium(),
            *CHROMIUM_FLAGS,
            f"--user-data-dir={profile}",
            "--remote-debugging-port=0",
            f"--window-size={width},{height}",
            "about:blank",
        ]
        process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            active_port = Path(profile) / "DevToolsActivePort"  # Chromium writes the port it picked here
            deadline = time.monotonic() + 30
            while not (active_port.exists() and active_port.read_text().count("\n") >= 1):
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{argv[0]} did not start its DevTools server")
                await asyncio.sleep(0.1)
            port = int(active_port.read_text().split()[0])
            async with aiohttp.ClientSession() as session:
                async with session.get(f"http://127.0.0.1:{port}/json/list") as response:
                    tab = next(target for target in await response.json() if target["type"] == "page")
                async with session.ws_connect(tab["webSocketDebuggerUrl"], max_msg_size=0) as socket:
                    page = Page(socket)
                    await page.send("Page.enable")
                    await page.resize(width, height)
                    yield page
        finally:
            process.terminate()
            process.wait(timeout=30)


def experiment_url(base: str, experiment_id: str) -> str:
    """The experiment's address as the README gives it: the training runs, whatever the browser remembers."""
    return f"{base}/#/experiments/{experiment_id}?{TRAINING_VIEW}"


def shrink(png: Path, width: int) -> None:
    """Scaled down to `width` pixels at most and quantised to 256 colours (64 muddied the grids and the run colours): the README's images stay small."""
    from PIL import Image

    image = Image.open(png).convert("RGB")
    if image.width > width:
        image = image.resize((width, round(image.height * width / image.width)), Image.LANCZOS)
    image.quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(png, optimize=True)


RUN_TABLE = "document.body.innerText.includes('matching runs')"
# The table's rows, not only its frame: the footer counts the runs while the rows still load.
RUN_ROWS = (
    RUN_TABLE
    + " && ['unet-w8-rgb', 'convnet-w2-rgb', 'sweep-smoke'].every(name => document.body.innerText.includes(name))"
)
ASSISTANT_CLOSE = '[data-component-id="mlflow.assistant.chat_panel.close"]'
EXPANDER = '[data-component-id$="runnamecellrenderer.tsx_46"]'  # the + beside a parent run's name
CHART_SEARCH = 'input[placeholder="Search metric charts"]'
SLIDER = '[role="slider"]'
GRID_SHOWN = "[...document.images].some(i => i.src.includes('grids') && i.complete && i.naturalWidth > 0)"


async def close_assistant(page: Page) -> None:
    """The MLflow Assistant panel opens by itself on a first visit and takes a third of the page."""
    with contextlib.suppress(TimeoutError):
        await page.wait(f"document.querySelector('{ASSISTANT_CLOSE}')", timeout=10)
        await page.click(ASSISTANT_CLOSE)


async def show_last_grid(page: Page) -> None:
    """Give the `grids` image chart its room and step its slider to the last epoch, as a user would.

    The chart lists every param of the run above the image (about 50 here): its Configure dialog
    turns that off. Its slider starts at step 0, where no grid is (they start at epoch 1)."""
    await page.eval(  # mark the menu of the card that holds the slider (the chart view has line charts too)
        "[...document.querySelectorAll('[data-testid=experiment-view-compare-runs-card-menu]')].forEach(menu => {"
        " let card = menu; while (card && !card.querySelector('[role=slider], .js-plotly-plot')) card = card.parentElement;"
        " if (card && card.querySelector('[role=slider]')) menu.setAttribute('data-grids-menu', ''); })"
    )
    await page.click("[data-grids-menu]")
    await page.wait("document.querySelector('[role=menuitem]')")
    await asyncio.sleep(0.5)  # menus and dialogs fade in: a click before they settle lands beside them
    await page.click("[role=menuitem]", "Configure")
    await page.wait("document.body.innerText.includes('Show run parameters')")
    await asyncio.sleep(1)
    await page.click("[role=switch]")  # Show run parameters: off
    await page.click("button", "Save changes")
    await page.wait("!document.body.innerText.includes('Show run parameters')")
    while await page.eval(f"(e => e.ariaValueNow !== e.ariaValueMax)(document.querySelector('{SLIDER}'))"):
        await page.press(SLIDER, "ArrowRight")
    await page.wait(GRID_SHOWN)


async def shoot(base: str, experiment: str, run: str, out: Path) -> None:
    """The four pictures, at 1400 x 900 CSS pixels (the image slider's cut to its corner)."""
    runs = f"{base}/#/experiments/{experiment}/runs?{TRAINING_VIEW}"
    async with browser() as page:
        await page.goto(
            experiment_url(base, experiment), RUN_ROWS
        )  # a TimeoutError, and no picture, when the rows never come
        await close_assistant(page)  # it stays closed for this browser
        await page.wait(RUN_ROWS)
        await asyncio.sleep(1)
        await page.screenshot(out / "mlflow_runs.png")

        two_runs = urllib.parse.quote("attributes.run_name LIKE '%-rgb-%'")
        await page.goto(
            f"{runs}&compareRunsMode=CHART&searchFilter={two_runs}", f"document.querySelector('{CHART_SEARCH}')"
        )
        await page.type(
            CHART_SEARCH, "^(train_loss|val_loss|val_psnr)$"
        )  # a regular expression; image charts always match
        await page.wait("document.querySelectorAll('.js-plotly-plot').length >= 3")
        await page.resize(1400, 1020)  # room for the second row: the grids of both runs at one epoch
        await show_last_grid(page)
        await page.eval(f"document.querySelector('{CHART_SEARCH}').scrollIntoView()")
        await asyncio.sleep(3)  # the curves draw after their frames
        await page.screenshot(out / "mlflow_charts.png")
        await page.resize(1400, 900)

        await page.goto(
            f"{base}/#/experiments/{experiment}/runs/{run}/model-metrics?{TRAINING_VIEW}",
            f"document.querySelector('{CHART_SEARCH}')",
        )
        await page.type(CHART_SEARCH, "grids")
        await page.wait("document.body.innerText.includes('No image logged at this step')")
        await show_last_grid(page)
        await asyncio.sleep(1)
        await page.screenshot(out / "mlflow_images.png", clip=(900, 620))

        await page.goto(f"{runs}&searchFilter=", RUN_TABLE + " && document.body.innerText.includes('sweep-smoke')")
        await page.click(EXPANDER)
        await page.wait("document.body.innerText.includes('smoke-trial-0')")
        await asyncio.sleep(1)
        await page.screenshot(out / "mlflow_sweep.png", clip=(1400, 480))


DOCS_PAGE = "guide/serving"  # the page docs_site.png shows, with the site's navigation
DOCS_RENDERED = "document.querySelector('nav.md-nav--primary') && document.querySelector('article h1')"


def shoot_docs(out: Path) -> None:
    """The docs site as `mkdocs build --strict` makes it, one page opened from disk."""
    with tempfile.TemporaryDirectory() as site:
        built = subprocess.run(
            [sys.executable, "-m", "mkdocs", "build", "--strict", "-d", site],
            cwd=PROJECT,
            capture_output=True,
            text=True,
            env=os.environ | {"NO_MKDOCS_2_WARNING": "1"},
        )
        if built.returncode != 0:
            raise SystemExit(f"mkdocs build --strict failed:\n{built.stderr[-3000:]}")

        async def shoot() -> None:
            async with browser(1400, 820) as page:  # wide enough for the navigation column
                await page.goto((Path(site) / DOCS_PAGE / "index.html").as_uri(), DOCS_RENDERED)
                await asyncio.sleep(1)
                await page.screenshot(out / "docs_site.png")

        asyncio.run(shoot())
    shrink(out / "docs_site.png", 1000)
    print(f"{out / 'docs_site.png'}: {(out / 'docs_site.png').stat().st_size // 1024} KiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--root",
        type=Path,
        default=Path(tempfile.gettempdir()) / "colorize-screenshots",
        help="the store's folder (emptied)",
    )
    parser.add_argument("--out", type=Path, default=PROJECT / "docs")
    parser.add_argument("--keep", action="store_true", help="shoot the store already in --root")
    parser.add_argument("--docs", action="store_true", help="shoot the docs site instead (docs_site.png)")
    args = parser.parse_args()
    if chromium() is None:
        raise SystemExit("no Chromium found: apt-get install chromium")
    if args.docs:
        return shoot_docs(args.out)
    if not args.keep:
        shutil.rmtree(args.root, ignore_errors=True)
        args.root.mkdir(parents=True)
        for overrides in RUNS:
            train(args.root, "trainer.epochs=4", *QUICK, *overrides)
        train(
            args.root,
            "sweep=smoke",
            "trainer.epochs=1",
            "data.limit=200",
            "hydra.sweeper.register=colorize",
            sweep=True,
        )

    import mlflow

    mlflow.set_tracking_uri(store_uri(args.root))
    experiment = mlflow.get_experiment_by_name("colorize").experiment_id
    run = mlflow.search_runs([experiment], "attributes.run_name LIKE 'unet-%'", output_format="list")[0].info.run_id
    with serve(store_uri(args.root)) as base:
        asyncio.run(shoot(base, experiment, run, args.out))
    for name in ("mlflow_runs.png", "mlflow_charts.png", "mlflow_images.png", "mlflow_sweep.png"):
        shrink(args.out / name, 1200)
        print(f"{args.out / name}: {(args.out / name).stat().st_size // 1024} KiB")


if __name__ == "__main__":
    main()
