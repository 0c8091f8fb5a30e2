"""The `rnnkit explore` page in a real browser: Debian's chromium, headless, driven by Selenium.

The page is loaded from a file:// URL, as a user's double-click would; every test checks that
the browser's console holds no error. The expected numbers come from Python (rnnkit.explore's
data, itself checked against the layers and rnnkit.scratch in tests/test_explore.py)."""

import importlib.util
import io
from pathlib import Path

import numpy as np
import pytest

from needs import require

require("selenium", "PIL", programs=("chromium", "chromedriver"))

pytestmark = pytest.mark.slow          # a real browser

from conftest import EXPLORE_STREAM_TEXT  # noqa: E402
from PIL import Image  # noqa: E402
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import Select  # noqa: E402

import rnnkit.nn as nn  # noqa: E402
from rnnkit.cli import main  # noqa: E402
from rnnkit.data import Vocab  # noqa: E402
from rnnkit.explore import decode_values, page_data, read_page_data, render_page  # noqa: E402

DOCS = Path(__file__).resolve().parents[1] / "docs"


def _chromium():
    spec = importlib.util.spec_from_file_location("make_explore_screenshot", DOCS / "make_explore_screenshot.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.chromium


@pytest.fixture(scope="module")
def driver(tmp_path_factory):
    d = _chromium()(tmp_path_factory.mktemp("chromium-profile"), 1280, 900)
    yield d
    d.quit()


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    """A two-layer float32 LSTM over prose with quotes and brackets: the file and its data."""
    text = EXPLORE_STREAM_TEXT[:400]
    vocab = Vocab.build(EXPLORE_STREAM_TEXT)
    cfg = nn.CharLMConfig(vocab_size=len(vocab), cell="lstm", hidden_size=7, num_layers=2, embedding_size=5)
    data = page_data(nn.CharLM(cfg, seed=0), vocab, vocab.encode(text), title="test page",
                     source="a test text")
    path = tmp_path_factory.mktemp("page") / "explore.html"
    path.write_text(render_page(data), encoding="utf-8")
    return path, data


def _open(driver, path):
    driver.get(path.resolve().as_uri())
    assert driver.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "1"
    _no_console_errors(driver)


def _start(driver, page, layer, quantity, unit):
    """Open the test page on one unit; return the page's data."""
    path, data = page
    _open(driver, path)
    _choose(driver, layer, quantity, unit)
    return data


def _no_console_errors(driver):
    errors = [e for e in driver.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]
    assert not errors, errors


def _colours(driver):
    return driver.execute_script(
        "return Array.from(document.querySelectorAll('span.ch'), s => s.style.backgroundColor)")


def _rgb(css):
    return tuple(int(v) for v in css[css.index("(") + 1:-1].split(","))


def _state(driver):
    return (int(Select(driver.find_element(By.ID, "layer")).first_selected_option.get_attribute("value")),
            Select(driver.find_element(By.ID, "quantity")).first_selected_option.get_attribute("value"),
            int(driver.find_element(By.ID, "unit").get_attribute("value")))


def _choose(driver, layer, quantity, unit):
    Select(driver.find_element(By.ID, "layer")).select_by_value(str(layer))
    Select(driver.find_element(By.ID, "quantity")).select_by_value(quantity)
    box = driver.find_element(By.ID, "unit")
    box.send_keys(Keys.CONTROL, "a")                          # type over the unit, as a user
    box.send_keys(str(unit), Keys.ENTER)
    assert _state(driver) == (layer, quantity, unit)


def test_page_loads_offline_and_holds_one_element_per_character(driver, page):
    path, data = page
    _open(driver, path)
    spans = driver.find_elements(By.CSS_SELECTOR, "#text span.ch")
    assert len(spans) == data["T"] == 400
    texts = driver.execute_script("return Array.from(document.querySelectorAll('span.ch'), s => s.textContent)")
    assert texts == data["labels"]
    assert driver.execute_script("return performance.getEntriesByType('resource').length") == 0
    assert "This page holds 400 characters" in driver.find_element(By.ID, "status").text
    assert driver.title == "rnnkit explore: test page"


def test_choosing_another_unit_changes_the_colours(driver, page):
    path, data = page
    _open(driver, path)
    seen = set()
    for layer, quantity, unit in [(1, "hidden", 0), (1, "hidden", 3), (0, "cell", 3), (0, "forget", 3)]:
        _choose(driver, layer, quantity, unit)
        colours = _colours(driver)
        assert tuple(colours) not in seen
        seen.add(tuple(colours))
        # the unit's largest activation is (one of) the reddest characters, its smallest the bluest
        v = decode_values(data, layer, quantity)[:, unit]
        redness = np.array([r - b for r, _, b in map(_rgb, colours)])
        assert redness[v.argmax()] == redness.max() and redness[v.argmin()] == redness.min()
        assert redness.max() > redness.min()
    # a sigmoid gate is centred at 0.5 on [0, 1]; a state at 0 on +-max(1, |a|)
    assert driver.find_element(By.ID, "legend-lo").text == "0.00"
    assert driver.find_element(By.ID, "legend-hi").text == "1.00"
    _no_console_errors(driver)


def test_hovering_a_character_shows_its_five_predictions(driver, page):
    data = _start(driver, page, 0, "hidden", 2)
    spans = driver.find_elements(By.CSS_SELECTOR, "span.ch")
    for t in (0, 37, data["T"] - 1):
        ActionChains(driver).move_to_element(spans[t]).perform()
        preds = driver.find_elements(By.CSS_SELECTOR, "#predictions li.pred")
        assert len(preds) == 5
        assert [int(li.get_attribute("data-id")) for li in preds] == data["top_ids"][t]
        shown = [float(li.get_attribute("data-p")) for li in preds]
        assert shown == data["top_p"][t]                          # the same float64 numbers
        assert [li.find_element(By.CLASS_NAME, "pred-p").text for li in preds] == \
            [f"{100 * p:.2f}%" for p in data["top_p"][t]]
        assert [li.find_element(By.CLASS_NAME, "pred-char").text for li in preds] == \
            [data["vocab_labels"][i] for i in data["top_ids"][t]]
        assert "cur" in spans[t].get_attribute("class")
        # that step's value of every quantity of the chosen unit
        cells = driver.find_elements(By.CSS_SELECTOR, "#gates td[data-q]")
        assert [c.get_attribute("data-q") for c in cells] == data["quantities"]
        for c in cells:
            assert float(c.get_attribute("data-v")) == decode_values(data, 0, c.get_attribute("data-q"))[t, 2]
    _no_console_errors(driver)


def test_keyboard_arrows_step_through_the_units(driver, page):
    _start(driver, page, 1, "hidden", 5)
    body = driver.find_element(By.TAG_NAME, "body")
    body.click()                                              # focus leaves the unit box
    before = _colours(driver)
    body.send_keys(Keys.ARROW_RIGHT)
    assert _state(driver) == (1, "hidden", 6) and _colours(driver) != before
    body.send_keys(Keys.ARROW_RIGHT)
    assert _state(driver)[2] == 0                             # wraps around after the last unit
    body.send_keys(Keys.ARROW_LEFT, Keys.ARROW_LEFT)
    assert _state(driver)[2] == 5 and _colours(driver) == before
    _no_console_errors(driver)


def test_ranked_units_are_the_pythons_and_a_click_shows_one(driver, page):
    path, data = page
    _open(driver, path)
    for name in ("inside", "position", "saturation"):
        buttons = driver.find_elements(By.CSS_SELECTOR, f"#rank-{name} button")
        assert [(int(b.get_attribute("data-layer")), b.get_attribute("data-quantity"),
                 int(b.get_attribute("data-unit"))) for b in buttons] == \
            [(r["layer"], r["quantity"], r["unit"]) for r in data["ranked"][name]]
    first = data["default_view"]                             # the page opens on it
    assert first["quantity"] == "hidden"
    assert _state(driver) == (first["layer"], first["quantity"], first["unit"])
    r = data["ranked"]["position"][-1]
    driver.find_elements(By.CSS_SELECTOR, "#rank-position button")[-1].click()
    assert _state(driver) == (r["layer"], r["quantity"], r["unit"])
    assert driver.find_element(By.CSS_SELECTOR, "#unit-stats tr.m-position td.num").text == \
        f"{r['score']:+.3f}"


def test_screenshot_is_not_blank(driver, page):
    path, _ = page
    _open(driver, path)
    ActionChains(driver).move_to_element(driver.find_elements(By.CSS_SELECTOR, "span.ch")[20]).perform()
    img = np.asarray(Image.open(io.BytesIO(driver.get_screenshot_as_png())).convert("RGB"), np.float64)
    assert img.shape[0] >= 500 and img.shape[1] >= 1000
    assert img.std() > 20                                     # not one colour
    assert len(np.unique(img.reshape(-1, 3), axis=0)) > 200   # text, colours, bars


@pytest.mark.parametrize("run", ["names", "stream"])
def test_cli_pages_in_the_browser(driver, explore_runs, tmp_path, run):
    out = tmp_path / f"{run}.html"
    args = [str(explore_runs[run])] + ([str(explore_runs["text"])] if run == "stream" else [])
    assert main(["explore"] + args + ["--max-chars", "2000", "--out", str(out)]) == 0
    data = read_page_data(out.read_text(encoding="utf-8"))
    _open(driver, out)
    spans = driver.find_elements(By.CSS_SELECTOR, "span.ch")
    assert len(spans) == data["T"]
    if run == "names":                                        # lines mode: the boundary is visible
        assert spans[0].text == "\u21b5" and [sp.text for sp in spans].count("\u21b5") == 60
        assert len(driver.find_elements(By.CSS_SELECTOR, "#text br")) == 0
    else:                                                     # stream mode: newlines break lines
        assert data["T"] == 2000 and data["cut"]
        assert "cut" in driver.find_element(By.ID, "status").text
        assert len(driver.find_elements(By.CSS_SELECTOR, "#text br")) == sum(data["newline"][1:])
    ActionChains(driver).move_to_element(spans[10]).perform()
    assert len(driver.find_elements(By.CSS_SELECTOR, "#predictions li.pred")) == 5
    _no_console_errors(driver)
