"""``rnnkit`` command line: train / sample / translate / eval / info / export / plot / explore /
check.

Exit codes: 0 success, 1 error (one line on stderr; ``--debug`` shows the traceback),
2 usage error, 130 interrupted outside training (training itself saves and exits 0 on Ctrl-C).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings

import numpy as np

from ._threads import threads_option
from .errors import ConfigError, RnnkitError
from .sample import DEFAULT_LENGTH
from .train_setup import (
    DEFAULT_STEPS,
    OPTION_CHOICES,
    TRAIN_DEFAULTS,
)


class _Parser(argparse.ArgumentParser):
    def error(self, message):       # one line, like every other error (exit code 2)
        self.exit(2, f"{self.prog}: error: {' '.join(message.split())} (see `{self.prog} --help`)\n")


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Show defaults, except where the help text already states them (default None)."""

    def _get_help_string(self, action):
        if action.default is None or action.default is False or "default:" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


def _fmt_help(prog):
    return _HelpFormatter(prog, max_help_position=32)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="rnnkit", description="Recurrent neural networks in NumPy: train and sample "
                "character-level language models, export them to PyTorch / ONNX.")
    p.add_argument("--version", action="version", version=f"rnnkit {_version()}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    p.commands = sub.choices          # name -> the command's parser (its usage errors)

    d, C = TRAIN_DEFAULTS, OPTION_CHOICES
    t = sub.add_parser("train", help="train a character-level language model", formatter_class=_fmt_help,
                       description="Train a character-level LM. With no arguments: US census first "
                       f"names (built in), lines mode, a 2x128 LSTM for {DEFAULT_STEPS:,} steps "
                       "(time it with `time rnnkit train`; the README gives a measured figure).")
    t.add_argument("file", nargs="?", help="a UTF-8 text file to train on (default: --dataset names)")
    t.add_argument("--dataset", choices=C["dataset"], help="built-in "
                   "data when no FILE is given: a text, or a pair task (dates: human dates -> ISO; "
                   "numbers: number words -> digits) for a seq2seq model (default: names)")
    t.add_argument("--out", help="checkpoint directory (default: runs/<data name>, or a fresh "
                   "runs/<data name>-N if that one is taken)")
    t.add_argument("--cell", choices=C["cell"],
                   help=f"recurrent cell (default: {d['cell']})")
    t.add_argument("--hidden-size", type=int, help=f"hidden units per layer (default: {d['hidden_size']})")
    t.add_argument("--num-layers", type=int, help=f"stacked recurrent layers (default: {d['num_layers']})")
    t.add_argument("--embedding-size", type=int, help=f"character embedding size, 0 = one-hot "
                   f"(default: {d['embedding_size']})")
    t.add_argument("--dropout", type=float, help=f"dropout between layers (default: {d['dropout']})")
    t.add_argument("--proj-size", type=int, help="LSTM only: project each layer's output to this "
                   "many units (LSTMP, torch.nn.LSTM's proj_size; below --hidden-size), 0 = none "
                   f"(default: {d['proj_size']})")
    t.add_argument("--learn-initial-state", action="store_true", default=None,
                   help="learn the state every sequence starts from (h0, c0 trained with the "
                        "weights) instead of zeros; numpy engine")
    t.add_argument("--input-dropout", type=float, help="variational (locked) dropout on every "
                   "layer's input, the embeddings included: one mask per sequence "
                   f"(default: {d['input_dropout']})")
    t.add_argument("--output-dropout", type=float, help="variational dropout on the top layer's "
                   f"output (default: {d['output_dropout']})")
    t.add_argument("--recurrent-dropout", type=float, help="variational dropout on the state "
                   "entering the recurrent product, one mask per sequence (Keras's meaning) "
                   f"(default: {d['recurrent_dropout']})")
    t.add_argument("--weight-drop", type=float, help="DropConnect on the recurrent weights "
                   f"W_hh, one mask per batch (AWD-LSTM) (default: {d['weight_drop']})")
    t.add_argument("--embedding-dropout", type=float, help="drop whole characters (their "
                   f"embedding) for a batch (default: {d['embedding_dropout']})")
    t.add_argument("--init", choices=C["init"], help="recurrent weights: PyTorch's uniform, or "
                   f"orthogonal W_hh blocks (default: {d['init']})")
    t.add_argument("--forget-bias", type=float, help="initial forget-gate bias (LSTM; GRU's "
                   f"update gate; none for RNN cells) (default: {d['forget_bias']})")
    t.add_argument("--layer-norm", action="store_const", const=True, help="layer-normalised "
                   "LSTM or GRU cells (Ba et al. 2016; numpy engine; no ONNX export)")
    t.add_argument("--seq-len", type=int, help=f"stream mode: BPTT chunk length (default: {d['seq_len']})")
    t.add_argument("--batch-size", type=int, help=f"sequences per batch (default: {d['batch_size']})")
    t.add_argument("--optimizer", choices=C["optimizer"],
                   help=f"optimizer (default: {d['optimizer']})")
    t.add_argument("--lr", type=float, help=f"learning rate (default: {d['lr']})")
    t.add_argument("--weight-decay", type=float, help=f"weight decay (default: {d['weight_decay']})")
    t.add_argument("--clip", type=float, help=f"clip the global gradient norm, 0 = off (default: {d['clip']})")
    t.add_argument("--schedule", choices=C["schedule"],
                   help=f"learning-rate schedule (default: {d['schedule']})")
    t.add_argument("--warmup", type=int, help=f"linear warm-up steps (default: {d['warmup']})")
    g = t.add_mutually_exclusive_group()
    g.add_argument("--steps", type=int, help=f"the total number of optimizer steps (default: "
                   f"{DEFAULT_STEPS}); with --resume also the total, counting the steps already "
                   f"done: --resume DIR --steps 3000 trains a run at step 1000 for 2000 more")
    g.add_argument("--epochs", type=float, help="passes over the training data instead of --steps "
                   "(> 0; at least one step)")
    t.add_argument("--val-frac", type=float, help=f"share of the data held out for validation "
                   f"(default: {d['val_frac']})")
    t.add_argument("--eval-every", type=int, help=f"validate, sample and checkpoint every N steps "
                   f"(default: {d['eval_every']})")
    t.add_argument("--patience", type=int, help="stop after N evaluations without improvement, 0 = never "
                   f"(default: {d['patience']})")
    t.add_argument("--mode", choices=C["mode"], help="lines: one example per line "
                   "(makemore); stream: one text with state carried across chunks (char-rnn); pairs: "
                   "'source<TAB>target' lines for a seq2seq model with attention; auto: pairs when "
                   "every line has one tab, lines for files of short lines "
                   f"(default: {d['mode']})")
    t.add_argument("--attention", choices=C["attention"], help="pairs mode: "
                   f"the decoder's attention over the source (default: {d['attention']})")
    t.add_argument("--decoder-cell", choices=C["decoder_cell"], help="pairs mode: the decoder's cell "
                   "(default: the --cell)")
    t.add_argument("--seed", type=int, help=f"random seed (default: {d['seed']})")
    t.add_argument("--resume", metavar="DIR", help="continue the run in DIR exactly where it stopped "
                   "(on either engine; one `rnnkit train` at a time may write a run directory)")
    t.add_argument("--engine", choices=C["engine"], help="numpy: rnnkit itself, in this "
                   "process; torch: PyTorch on a CPU or GPU, and many processes under `torchrun "
                   f"--nproc_per_node=N -m rnnkit train ...` (default: {d['engine']})")
    t.add_argument("--device", help="torch engine: cpu, cuda or cuda:N (default: cuda when "
                   "available, else cpu)")
    t.add_argument("--threads", default="auto", type=threads_option, metavar="N|auto",
                   help="CPU threads for the products (NumPy's BLAS, and torch's with --engine "
                   "torch); auto: time steps on one thread and on all, keep the faster and say "
                   "which - one thread wins when another program keeps a core busy (default: auto)")
    t.add_argument("--dtype", choices=C["dtype"], help=f"parameter dtype (default: {d['dtype']})")
    t.add_argument("--encoding", help="text encoding of FILE; 'bytes' reads any file byte by byte "
                   f"(default: {d['encoding']})")
    t.add_argument("--num-samples", type=int, help=f"samples printed at the end (default: {d['num_samples']})")
    t.add_argument("--allow-other-text", action="store_true", help="with --resume: continue on "
                   "FILE although it is not the text the run was trained on (its SHA-256 differs)")
    t.add_argument("--overwrite", action="store_true", help="start over in an --out directory that "
                   "already holds a run: everything rnnkit wrote there (checkpoint versions, best/, "
                   "metrics.jsonl, pictures) is deleted first; other files are kept")
    t.add_argument("--tensorboard", metavar="DIR", help="also write the numbers of metrics.jsonl as "
                   "TensorBoard event files to DIR (the tensorboard extra; watch with `tensorboard "
                   "--logdir DIR`); with --resume the curves continue there")
    t.add_argument("--quiet", action="store_true", help="no progress bar and no samples during training")
    t.add_argument("--debug", action="store_true", help="show tracebacks")

    s = sub.add_parser("sample", help="generate text from a trained model", formatter_class=_fmt_help)
    s.add_argument("dir", help="checkpoint directory written by `rnnkit train`")
    s.add_argument("--num", type=int, default=10, help="lines mode: how many samples")
    s.add_argument("--length", type=int, help=f"stream mode: characters to generate (default: "
                   f"{DEFAULT_LENGTH}; lines mode: the longest sample)")
    s.add_argument("--temperature", type=float, default=1.0, help="softmax temperature; 0 = greedy")
    s.add_argument("--top-k", type=int, default=0, help="sample among the k most probable characters (0 = all)")
    s.add_argument("--top-p", type=float, default=1.0, help="nucleus sampling: smallest set with this "
                   "total probability (1 = all)")
    s.add_argument("--greedy", action="store_true", help="always take the most probable character")
    s.add_argument("--beam", type=int, default=0, help="beam search: print the B most probable "
                   "continuations with their log-probabilities")
    s.add_argument("--prime", default="", help="text to start from")
    s.add_argument("--seed", type=int, default=0, help="random seed (same seed, same output)")
    s.add_argument("--latest", action="store_true", help="use the latest weights instead of the best ones")
    s.add_argument("--onnx", metavar="FILE", help="generate with ONNX Runtime from FILE (written by "
                   "`rnnkit export`) instead of rnnkit")
    s.add_argument("--debug", action="store_true", help="show tracebacks")

    e = sub.add_parser("eval", help="loss of a trained model on a text file", formatter_class=_fmt_help)
    e.add_argument("dir", help="checkpoint directory")
    e.add_argument("file", help="text file to evaluate on")
    e.add_argument("--encoding", default="utf-8", help="text encoding ('bytes' for byte level)")
    e.add_argument("--latest", action="store_true", help="use the latest weights instead of the best ones")
    e.add_argument("--debug", action="store_true", help="show tracebacks")

    tr = sub.add_parser("translate", help="translate text with a seq2seq run (trained on pairs)",
                        formatter_class=_fmt_help)
    tr.add_argument("dir", help="checkpoint directory written by `rnnkit train` on pairs")
    tr.add_argument("text", nargs="*", help="source texts (default: each line of standard input); "
                    "one output line per input, nothing else on stdout")
    tr.add_argument("--beam", type=int, default=1, help="beam width (1 = greedy)")
    tr.add_argument("--max-length", type=int, help="longest output (default: 2 x the longest "
                    "source + 10)")
    tr.add_argument("--latest", action="store_true", help="use the latest weights instead of the best ones")
    tr.add_argument("--onnx", metavar="FILE", help="decode with ONNX Runtime from FILE (written by "
                    "`rnnkit export`) instead of rnnkit")
    tr.add_argument("--debug", action="store_true", help="show tracebacks")

    i = sub.add_parser("info", help="describe a checkpoint", formatter_class=_fmt_help)
    i.add_argument("dir", help="checkpoint directory")
    i.add_argument("--json", action="store_true", help="print JSON")
    i.add_argument("--debug", action="store_true", help="show tracebacks")

    x = sub.add_parser("export", help="export a checkpoint to ONNX", formatter_class=_fmt_help)
    x.add_argument("dir", help="checkpoint directory")
    x.add_argument("--onnx", metavar="FILE", required=True, help="output .onnx file (a seq2seq run "
                   "also writes its decoder step next to it, as FILE's stem + .decoder.onnx)")
    x.add_argument("--latest", action="store_true", help="use the latest weights instead of the best ones")
    x.add_argument("--debug", action="store_true", help="show tracebacks")

    pl = sub.add_parser("plot", help="draw loss curves and gate activations of a checkpoint",
                        formatter_class=_fmt_help)
    pl.add_argument("dir", help="checkpoint directory")
    pl.add_argument("--out", help="where to write the PNG files (default: DIR)")
    pl.add_argument("--text", help="text whose gate activations are drawn (default: a sample)")
    pl.add_argument("--debug", action="store_true", help="show tracebacks")

    from .explore import GENERATE, GENERATE_LINES, MAX_CHARS
    ex = sub.add_parser("explore", help="write an interactive HTML page of what each unit and gate does",
                        formatter_class=_fmt_help, description="Run the model over a text (FILE, or "
                        "one it generates) and write one self-contained HTML page: the text coloured "
                        "by a chosen unit or gate, the top-5 next-character predictions at every "
                        "character, and the units worth looking at. On a seq2seq run: the "
                        "translations of FILE (pairs, or one source a line) or of --num validation "
                        "pairs, with each output character's attention over its source. Works offline.")
    ex.add_argument("dir", help="checkpoint directory")
    ex.add_argument("file", nargs="?", help="a text file to run the model over (default: a text "
                    "the model generates, see --prime and --length)")
    ex.add_argument("--out", default="explore.html", help="the HTML file to write")
    ex.add_argument("--prime", help="generate after this text (instead of FILE)")
    ex.add_argument("--num", type=int, help=f"lines mode: lines to generate (default: {GENERATE_LINES})")
    ex.add_argument("--length", type=int, help="stream mode: characters to generate; lines mode: "
                    f"the longest line (default: {GENERATE})")
    ex.add_argument("--temperature", type=float, default=1.0, help="softmax temperature of the "
                    "generation; 0 = greedy")
    ex.add_argument("--seed", type=int, default=0, help="random seed of the generation")
    ex.add_argument("--max-chars", type=int, default=MAX_CHARS, help="most characters the page "
                    f"holds (at most {MAX_CHARS}; fewer for big models); a longer text is cut")
    ex.add_argument("--encoding", default="utf-8", help="text encoding of FILE")
    ex.add_argument("--latest", action="store_true", help="use the latest weights instead of the best ones")
    ex.add_argument("--debug", action="store_true", help="show tracebacks")

    from .check import command as check_command
    check_command.add_arguments(sub.add_parser(
        "check", help="find the first wrong quantity in a learner's own notebook functions",
        formatter_class=_fmt_help, description="Run the notebook functions a .py file or a Jupyter "
        "notebook defines (in a child process with time and memory limits) and compare every "
        "output and cache entry with rnnkit.scratch: the first wrong quantity, where, and its "
        "likely cause. Exit code 0 when nothing fails, 1 otherwise, 2 for usage errors."))

    return p


def _version():
    from . import __version__
    return __version__


#: Under torchrun, the terminal of a process other than rank 0 (its stderr, kept when its
#: output is silenced): where an error of that process alone is reported.
_RANK_STDERR = None


def _err(msg, agreed: bool = True):
    """Print the one error line. An error of a silenced torchrun process that the others did
    not agree on (it failed alone, e.g. before joining the job) goes to its own terminal,
    marked with its rank; rank 0 reports the agreed ones."""
    if not agreed and _RANK_STDERR is not None:
        rank = os.environ.get("RANK", "?")
        os.write(_RANK_STDERR, f"rnnkit: error: rank {rank}: {msg}\n".encode("utf-8", "replace"))
        return
    print(f"rnnkit: error: {msg}", file=sys.stderr)


def _dir_arg(path) -> str:
    """A checkpoint directory argument; an empty string would silently mean the current
    directory, so it is refused."""
    if not str(path).strip():
        raise ConfigError("DIR: expected a checkpoint directory, got an empty string (use . for "
                          "the current directory).")
    return path


# ============================================================================== train
def _usage_error(command: str, message: str):
    """Exit 2 with ``rnnkit COMMAND``'s usage line, as argparse does for a bad option."""
    build_parser().commands[command].error(message)


def _silence_other_processes(args) -> None:
    """Under torchrun only the process of rank 0 speaks: the others' stdout and stderr go to
    /dev/null (unless --debug), so that a run prints its lines, and an error, once."""
    global _RANK_STDERR
    if (os.environ.get("RANK") or "0") == "0" or args.debug or os.environ.get("RNNKIT_DEBUG") == "1":
        return
    sys.stdout.flush()
    sys.stderr.flush()
    _RANK_STDERR = os.dup(2)                  # for an error of this process alone (_err)
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 1)
    os.dup2(null, 2)
    os.close(null)


def cmd_train(args) -> int:
    from .train_run import prepare, train_command
    _silence_other_processes(args)
    o = prepare(args)
    if args.device is not None and o["engine"] != "torch":
        _usage_error("train", f"--device {args.device} applies to --engine torch; the numpy "
                     f"engine runs on the CPU (add --engine torch, or drop --device).")
    return train_command(args, o)


# ============================================================================== using a model
def _flag(name: str) -> str:
    """An argument's name as the command line spells it: top_k -> --top-k."""
    return "--" + name.replace("_", "-")


def cmd_sample(args) -> int:
    from .load import load_model
    from .sample import beam_search, finite_step, iter_sample_lines, onnx_step, print_stream, sample_request
    req = sample_request(num=args.num, length=args.length, beam=args.beam, seed=args.seed,
                         temperature=args.temperature, top_k=args.top_k, top_p=args.top_p,
                         greedy=args.greedy, flag=_flag)
    lm = None
    if args.onnx is not None:
        from .interop.onnx_runtime import OnnxCharLM
        lm = OnnxCharLM(args.onnx)
    model, vocab, _, used = load_model(_dir_arg(args.dir), latest=args.latest)
    lines = vocab.bos_id is not None
    if lm is not None:
        step = finite_step(onnx_step(lm, len(vocab), args.onnx), args.onnx)
    else:
        step = finite_step(model.stepper().step, str(used))
    if req.beam:
        for b in beam_search(step, vocab, req.beam, max_len=req.max_len(lines), prime=args.prime, lines=lines):
            print(f"{b.logprob:10.4f}  {b.text}" + ("" if b.finished else "  (unfinished)"))
        return 0
    rng = np.random.default_rng(req.seed)
    if lines:
        for s in iter_sample_lines(step, vocab, req.num, rng, max_len=req.max_len(lines), prime=args.prime,
                                   **req.pick_kw()):
            print(s)
    else:
        print_stream(step, vocab, req.max_len(lines), rng, prime=args.prime, **req.pick_kw())
    return 0


def cmd_translate(args) -> int:
    from .translate import load_translator
    tr = load_translator(_dir_arg(args.dir), latest=args.latest)
    if args.onnx is not None:
        from .interop.onnx_runtime import OnnxSeq2Seq
        from .translate import onnx_translator
        tr = onnx_translator(tr, OnnxSeq2Seq(args.onnx))
    texts = args.text or sys.stdin.read().splitlines()
    for t in tr.translate(texts, beam=args.beam, max_length=args.max_length):
        print(t.text)
    return 0


def cmd_eval(args) -> int:
    from .data import read_text
    from .evaluate import score_text
    from .load import load_model
    loaded = load_model(_dir_arg(args.dir), latest=args.latest, need_charlm=False)
    if type(loaded.model).__name__ == "Seq2Seq":
        from .translate import eval_pairs_file, translator_of
        for line in eval_pairs_file(translator_of(loaded), args.file, args.encoding):
            print(line)
        return 0
    if type(loaded.model).__name__ != "CharLM" or loaded.vocab is None:
        loaded = load_model(_dir_arg(args.dir), latest=args.latest)      # says what is wrong
    score = score_text(loaded.model, loaded.vocab, read_text(args.file, encoding=args.encoding),
                       source=args.file, hint=f", see `rnnkit info {args.dir}`")
    print(f"checkpoint: {loaded.path}")
    print(f"characters: {score.characters}")
    if score.dropped is not None:   # lines mode: surrounding whitespace and blank lines
        print(f"dropped_characters: {score.dropped}")
    print(f"loss_nats: {score.loss:.6f}")
    print(f"bits_per_char: {score.bits_per_char:.6f}")
    return 0


def cmd_info(args) -> int:
    from .load import checkpoint_info
    info = checkpoint_info(_dir_arg(args.dir))
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    for k, v in info.items():
        if k == "config":
            print("config:")
            for ck_, cv in v.items():
                print(f"  {ck_}: {cv}")
        elif isinstance(v, float):
            print(f"{k}: {v:.4f}")
        else:
            print(f"{k}: {v if v is not None else '-'}")
    return 0


def cmd_export(args) -> int:
    from .checkpoint import check_not_inside_run
    from .interop.onnx import decoder_path, export
    from .io import check_output_file
    from .load import load_model
    out = check_output_file(args.onnx, "--onnx")                    # before any work
    check_not_inside_run(out, "--onnx")
    loaded = load_model(_dir_arg(args.dir), latest=args.latest, need_charlm=False)
    seq2seq = type(loaded.model).__name__ == "Seq2Seq"
    if seq2seq:
        check_not_inside_run(check_output_file(decoder_path(out), "--onnx"), "--onnx")
    elif type(loaded.model).__name__ != "CharLM" or loaded.vocab is None:
        loaded = load_model(_dir_arg(args.dir), latest=args.latest)      # says what is wrong
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"--onnx {out}: cannot create {out.parent}: {e.strerror or e}.") from None
    export(loaded.model, str(out), metadata={"vocab": json.dumps(loaded.vocab.to_json())})
    if seq2seq:
        print(f"wrote {out} and {decoder_path(out)} (from {loaded.path}); run them with "
              f"`rnnkit translate {args.dir} --onnx {out}`")
    else:
        print(f"wrote {out} (from {loaded.path}); run it with `rnnkit sample {args.dir} --onnx {out}`")
    return 0


def cmd_plot(args) -> int:
    try:
        from .plot import plot_checkpoint
    except ImportError as e:
        raise ConfigError(f"plotting needs matplotlib: pip install 'rnnkit[plot]' ({e}).") from None
    if args.out is not None:
        from .checkpoint import check_not_inside_run
        from .io import check_output_dir
        check_not_inside_run(check_output_dir(args.out, "--out"), "--out")   # before any work
    if args.text is not None and not args.text:
        raise ConfigError("--text: expected some text to draw, got an empty string.")
    for p in plot_checkpoint(_dir_arg(args.dir), out_dir=args.out, text=args.text):
        print(p)
    return 0


def cmd_explore(args) -> int:
    from .explore import explore_checkpoint  # checks --out before any work
    r = explore_checkpoint(args.dir, args.out, file=args.file, prime=args.prime,
                           length=args.length, num=args.num, seed=args.seed, temperature=args.temperature,
                           max_chars=args.max_chars, encoding=args.encoding, latest=args.latest)
    cut = f" (the first {r['chars']:,} of {r['total']:,}: the text was cut)" if r["cut"] else ""
    print(f"wrote {r['path']}: {r['chars']:,} characters{cut} of {r['source']}; open it in a browser")
    return 0


def cmd_check(args) -> int:
    from .check.command import main as check_main
    return check_main(args)


COMMANDS = {"train": cmd_train, "sample": cmd_sample, "eval": cmd_eval, "info": cmd_info,
            "translate": cmd_translate,
            "export": cmd_export, "plot": cmd_plot, "explore": cmd_explore, "check": cmd_check}


class _WarningLines:
    """``warnings.showwarning`` for the command line: each distinct warning once, as one line
    ``rnnkit: warning: ...`` (no file name, no source line, long texts cut)."""

    def __init__(self):
        self.seen = set()

    def __call__(self, message, category, filename, lineno, file=None, line=None):
        text = " ".join(str(message).split()) or category.__name__
        if len(text) > 500:
            text = text[:500] + " ..."
        if not issubclass(category, UserWarning):
            text += f" ({category.__name__})"
        if text not in self.seen:
            self.seen.add(text)
            print(f"rnnkit: warning: {text}", file=sys.stderr)


def main(argv=None) -> int:
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _WarningLines()
            return _main(argv)
    except KeyboardInterrupt:
        if os.environ.get("RNNKIT_DEBUG") == "1":
            raise
        _err("interrupted")
        return 130


def _main(argv) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    args.argv = argv
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    debug = getattr(args, "debug", False) or os.environ.get("RNNKIT_DEBUG") == "1"
    try:
        return COMMANDS[args.command](args)
    except KeyboardInterrupt:
        if debug:
            raise
        _err("interrupted")
        return 130
    except BrokenPipeError:
        return 0
    except RnnkitError as e:
        if debug:
            raise
        _err(str(e), getattr(e, "_rnnkit_agreed", False) or _RANK_STDERR is None)
        return 1
    except ImportError as e:
        if debug:
            raise
        _err(f"{e}. Install the optional parts with: pip install 'rnnkit[all]'", _RANK_STDERR is None)
        return 1
    except Exception as e:  # noqa: BLE001 - one line, never a traceback without --debug
        if debug:
            raise
        _err(f"unexpected {type(e).__name__}: {e} (run again with --debug for the traceback, and "
             f"please report it)", _RANK_STDERR is None)
        return 1


if __name__ == "__main__":
    sys.exit(main())
