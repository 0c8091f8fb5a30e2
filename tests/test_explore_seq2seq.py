"""`rnnkit explore` on a seq2seq run: for each output character, its attention over the source.

The reference for every weight on the page is the model's teacher-forced forward pass over
(source, output) - a different code path from the greedy decoder that wrote the page. The
browser tests drive the page in Debian's headless chromium with Selenium, from a file:// URL,
and check that the browser's console holds no error."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from rnnkit.cli import main
from rnnkit.data import pair_vocabs
from rnnkit.errors import ConfigError
from rnnkit.explore import read_page_data, render_page, seq2seq_page_data
from rnnkit.nn import Seq2Seq, Seq2SeqConfig
from rnnkit.translate import Translator
from tests.needs import require

DOCS = Path(__file__).resolve().parents[1] / "docs"
WORDS = ["abc", "ba", "cab", "aab", "bca", "ccb", "acb", "bb", "cba", "abca"]
SOURCES = ["abca", "cab", "b", "ccbab"]


def _translator(attention="additive"):
    sv, tv = pair_vocabs([(w, w[::-1]) for w in WORDS])
    m = Seq2Seq(Seq2SeqConfig(src_vocab_size=len(sv), tgt_vocab_size=len(tv), hidden_size=6,
                              embedding_size=4, attention=attention), seed=0)
    for p in m.parameters().values():
        p *= 3.0                                     # peaked weights, unlike those at init
    return Translator(m, sv, tv)


def _teacher_forced_weights(tr, source, output_ids):
    """(len(output) + 1, len(source)) attention weights of the teacher-forced forward pass."""
    src = tr.src_vocab.encode(source)[:, None]
    x = np.array([tr.eos] + list(output_ids))[:, None]
    _, align = tr.model(src, x)
    return align[:, 0]


def test_page_data_holds_each_output_steps_attention_over_the_source():
    tr = _translator()
    data = seq2seq_page_data(tr, SOURCES, [s[::-1] for s in SOURCES], title="t", source="s")
    assert data["kind"] == "seq2seq" and len(data["items"]) == len(SOURCES)
    for src, item in zip(SOURCES, data["items"]):
        ids = tr.tgt_vocab.encode(item["output"]).tolist()
        want = _teacher_forced_weights(tr, src, ids)
        assert item["source_labels"] == list(src)
        # one row per output character, and one for the <eos> step of a finished output
        assert item["output_labels"] == list(item["output"]) + (["\u21b5"] if item["finished"] else [])
        np.testing.assert_allclose(item["weights"], want[:len(item["output_labels"])], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(np.sum(item["weights"], axis=1), 1.0, rtol=1e-5)
        assert item["target"] == src[::-1]
    page = render_page(data)
    assert read_page_data(page) == data and "Content-Security-Policy" in page   # one page, data inline


def test_a_model_without_attention_has_no_page():
    with pytest.raises(ConfigError, match="no attention"):
        seq2seq_page_data(_translator("none"), SOURCES)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("s2s-explore")
    pairs = root / "rev.tsv"
    pairs.write_text("".join(f"{w}\t{w[::-1]}\n" for w in WORDS * 3))
    assert main(["train", str(pairs), "--out", str(root / "run"), "--hidden-size", "6",
                 "--embedding-size", "4", "--batch-size", "8", "--steps", "4", "--eval-every", "2",
                 "--quiet"]) == 0
    return root


def test_explore_on_a_seq2seq_run_shows_its_validation_pairs_or_a_file(run, capsys):
    assert main(["explore", str(run / "run"), "--num", "3", "--out", str(run / "val.html")]) == 0
    data = read_page_data((run / "val.html").read_text(encoding="utf-8"))
    assert len(data["items"]) == 3 and all(i["target"] is not None for i in data["items"])
    assert main(["explore", str(run / "run"), str(run / "rev.tsv"), "--out", str(run / "file.html")]) == 0
    data = read_page_data((run / "file.html").read_text(encoding="utf-8"))
    assert [i["source"] for i in data["items"]] == WORDS * 3
    (run / "sources.txt").write_text("abc\n\ncab\n")
    assert main(["explore", str(run / "run"), str(run / "sources.txt"), "--out", str(run / "src.html")]) == 0
    data = read_page_data((run / "src.html").read_text(encoding="utf-8"))
    assert [i["source"] for i in data["items"]] == ["abc", "cab"] and data["items"][0]["target"] is None
    capsys.readouterr()
    assert main(["explore", str(run / "run"), "--prime", "ab", "--out", str(run / "x.html")]) != 0
    assert "--prime and --length are for a CharLM" in capsys.readouterr().err


# -- in a real browser -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def driver(tmp_path_factory):
    require("selenium", programs=("chromium", "chromedriver"))
    spec = importlib.util.spec_from_file_location("make_explore_screenshot", DOCS / "make_explore_screenshot.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    d = mod.chromium(tmp_path_factory.mktemp("chromium-profile"), 1200, 900)
    yield d
    d.quit()


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    tr = _translator()
    data = seq2seq_page_data(tr, SOURCES, [s[::-1] for s in SOURCES], title="reverse", source="a test")
    path = tmp_path_factory.mktemp("page") / "explore.html"
    path.write_text(render_page(data), encoding="utf-8")
    return path, data, tr


def _open(driver, path):
    from selenium.webdriver.common.by import By
    driver.get(path.resolve().as_uri())
    assert driver.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "1"
    _no_console_errors(driver)


def _no_console_errors(driver):
    errors = [e for e in driver.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]
    assert not errors, errors


def _source_cells(driver, k):
    return driver.execute_script(
        "return Array.from(document.querySelectorAll('.pair[data-item=\"' + arguments[0] + '\"] .src .ch'),"
        " e => [e.textContent, parseFloat(e.dataset.w), e.style.backgroundColor])", k)


def _blue(w):
    """The page's colour for weight w, written again here: white blended to (45, 95, 168)."""
    return tuple(round(a + (b - a) * w) for a, b in zip((255, 255, 255), (45, 95, 168)))


def _rgb(css):
    return tuple(int(v) for v in css[css.index("(") + 1:-1].split(","))


@pytest.mark.slow
def test_pointing_at_an_output_character_shades_the_source_by_its_attention(driver, page):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    path, data, tr = page
    _open(driver, path)
    assert driver.execute_script("return performance.getEntriesByType('resource').length") == 0
    for k, src in enumerate(SOURCES):
        item = data["items"][k]
        outs = driver.find_elements(By.CSS_SELECTOR, f'.pair[data-item="{k}"] .out .ch')
        assert [o.text or o.get_attribute("textContent") for o in outs] == item["output_labels"]
        want = _teacher_forced_weights(tr, src, tr.tgt_vocab.encode(item["output"]).tolist())
        assert len(outs) == len(item["weights"])
        for t, o in enumerate(outs):
            ActionChains(driver).move_to_element(o).perform()
            cells = _source_cells(driver, k)
            assert [c[0] for c in cells] == list(src)
            np.testing.assert_allclose([c[1] for c in cells], want[t], rtol=1e-5, atol=1e-6)
            for (_, w, css) in cells:
                assert max(abs(a - b) for a, b in zip(_rgb(css), _blue(w))) <= 1
            assert "cur" in o.get_attribute("class")
            best = int(np.argmax(want[t]))
            assert f"source character {best + 1} " in driver.find_element(By.ID, "detail").text
    _no_console_errors(driver)


@pytest.mark.slow
def test_arrow_keys_walk_through_the_output_steps_and_the_pairs(driver, page):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    path, data, _ = page
    _open(driver, path)
    body = driver.find_element(By.TAG_NAME, "body")

    def current():
        return driver.execute_script(
            "const c = document.querySelector('.out .ch.cur'); return [+c.dataset.item, +c.dataset.t]")

    assert current() == [0, 0]
    steps = len(data["items"][0]["output_labels"])
    for t in range(1, steps):
        body.send_keys(Keys.ARROW_RIGHT)
        assert current() == [0, t]
    body.send_keys(Keys.ARROW_RIGHT)                          # past the last step: the next pair
    assert current() == [1, 0]
    body.send_keys(Keys.ARROW_LEFT)
    assert current() == [0, steps - 1]
    body.send_keys(Keys.ARROW_DOWN, Keys.ARROW_DOWN)
    assert current() == [2, 0]
    cells = _source_cells(driver, 2)
    np.testing.assert_allclose([c[1] for c in cells], data["items"][2]["weights"][0], rtol=1e-6)
    _no_console_errors(driver)


@pytest.mark.slow
def test_the_page_of_a_trained_run_opens_in_the_browser(driver, run):
    from selenium.webdriver.common.by import By
    assert main(["explore", str(run / "run"), "--out", str(run / "run.html")]) == 0   # all 3 held out
    data = read_page_data((run / "run.html").read_text(encoding="utf-8"))
    _open(driver, run / "run.html")
    assert len(driver.find_elements(By.CSS_SELECTOR, ".pair")) == len(data["items"]) == 3
    verdicts = [e.text for e in driver.find_elements(By.CSS_SELECTOR, ".verdict")]
    assert verdicts == [("= target" if i["output"] == i["target"] else f"target: {i['target']}")
                        for i in data["items"]]
    assert driver.title == "rnnkit explore: attention"
