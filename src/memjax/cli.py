"""The ``memjax`` command line: flags -> configs -> protocol. Nothing else lives here."""

from __future__ import annotations

import argparse
import atexit
import json
import math
import os
import stat
import sys
import threading
from pathlib import Path

# JAX is imported by the commands that need it, not here: --help, --version and mistakes in the
# arguments answer at once (0.15 s against 1.2 s with JAX imported)
from memjax import MODEL_NAMES, __version__, configure_xla, enable_compilation_cache
from memjax.data.babi import ENV_VAR, DataError, parse_tasks, unreadable
from memjax.data.download import VARIANTS as BABI_VARIANTS
from memjax.runtime import stdout_to_devnull


def _positive(kind=int):
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be positive, got {text}")
        return value

    return parse


def _seconds(text):
    value = _positive(float)(text)
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}")
    return value


def _nonnegative(kind=int):
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected {'a whole number' if kind is int else 'a number'}, got {text!r}") from None
        if not value >= 0:  # also refuses nan
            raise argparse.ArgumentTypeError(f"must be at least 0, got {text}")
        return value

    return parse


def _fraction(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {text}")
    return value


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="memjax", description="Memory networks for bAbI question answering in JAX.")
    p.add_argument("--version", action="version", version=f"memjax {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train and evaluate a model on bAbI tasks",
                       description="Train and evaluate on bAbI. Defaults are the paper's recipe "
                                   "(MemN2N per task: d=20, 3 hops, PE, TE, LS, RN, adjacent tying, 100+20 "
                                   "epochs; joint: d=50, 60+30 epochs. DMN+: d=80, 3 episodes, Adam 0.001, "
                                   "batch 100, dropout 0.1, L2 0.001, up to 256 epochs, early stopping after 20). "
                                   "--config FILE reads these flags from a TOML file; the flags given win.")
    # the flags added to t itself are the data and output ones (argparse's own group, retitled), the others
    # are grouped by the model families they act on
    t._optionals.title = "data and output"
    t.add_argument("--config", metavar="FILE",
                   help="read the flags' values from a TOML file: its keys are the flags' names (batch_size or "
                        "batch-size) or the config fields they set (temporal, linear_start, ...), flat or in "
                        "[model] and [train] tables; flags given on the command line override it (see the "
                        "docs, Command line, 'Config files')")
    t.add_argument("--data", help=f"bAbI tasks_1-20_v1-2 folder (default: ${ENV_VAR})")
    t.add_argument("--set", default="en", help="data set subfolder: en (1k), en-10k, ... (default en); dialog: "
                                               "dialog bAbI tasks 1-6 (--data: its dialog-bAbI-tasks folder, "
                                               "default $MEMJAX_DIALOG_DATA)")
    t.add_argument("--tasks", help="tasks: 1, 1,2,5-7 or all (default 1)")
    t.add_argument("--valid", default="release", choices=["release", "holdout"],
                   help="validation split: the release's en-valid split, or a seeded 10%% hold-out")

    r = t.add_argument_group("training recipe (all models)",
                             "defaults: each family's recipe (see the model pages of the docs)")
    r.add_argument("--model", default="memn2n", choices=list(MODEL_NAMES),
                   help="model family (default memn2n; with --set dialog, memn2n is memn2n-dialog); dmn: Kumar et al. 2016, "
                        "strongly supervised; lstm, attn-lstm: baselines (an LSTM reader; Keras's attention + LSTM "
                        "example); qrn: Query-Reduction Network (Seo et al. 2017); entnet: Recurrent Entity Network "
                        "(Henaff et al. 2017); memn2n-dialog, embeddings-dialog: dialog bAbI (Bordes et al. 2017), "
                        "MemN2N and the supervised-embeddings baseline")
    r.add_argument("--joint", action="store_true", help="one model over all the tasks (joint training)")
    r.add_argument("--seeds", type=_positive(), default=1,
                   help="independent runs per task, trained at once; the best on validation is reported")
    r.add_argument("--first-seed", type=_nonnegative(), default=0, metavar="K",
                   help="the runs' seeds are K, K+1, ... (default 0); a run depends on its seed, not on the "
                        "runs beside it, so --seeds 2 --first-seed 2 trains the runs that --seeds 4 adds to "
                        "--seeds 2 (one run alone is compiled differently: it can differ by rounding)")
    r.add_argument("--epochs", type=_positive(), help="epochs of the main schedule (MemN2N default 100, joint 60; DMN/DMN+: at most 256)")
    r.add_argument("--batch-size", type=_positive(), help="minibatch size (default 32; DMN+ 100)")
    r.add_argument("--lr", type=_positive(float), help="learning rate (default 0.01; DMN/DMN+ Adam 0.001)")
    r.add_argument("--optimizer", choices=["sgd", "adagrad", "adam", "rmsprop"],
                   help="sgd (MemN2N's recipe), adagrad (QRN's), adam (DMN+'s, LSTM's) or rmsprop (attn-lstm's)")
    r.add_argument("--decay-every", type=_positive(), help="halve the rate every N epochs (default 25; joint 15)")
    r.add_argument("--cycle-epochs", type=_positive(), metavar="N",
                   help="adam: a triangular cyclic rate instead of the halving: from --lr-min up to --lr over N "
                        "epochs and back, repeated (default off)")
    r.add_argument("--lr-min", type=_nonnegative(float), metavar="R",
                   help="the cyclic rate's low point (with --cycle-epochs; default 0.0002)")
    r.add_argument("--weight-decay", type=_fraction, metavar="L2",
                   help="L2 coefficient on the weights (DMN+ default 0.001; MemN2N 0)")
    r.add_argument("--dropout", type=_fraction, help="dropout rate (DMN+: facts and final memory; default 0.1)")
    r.add_argument("--patience", type=_positive(),
                   help="early stopping: stop a run after N epochs without a lower validation error and keep "
                        "its best epoch (DMN+ default 20; MemN2N: off)")
    r.add_argument("--dim", type=_positive(), help="embedding size (MemN2N default 20, joint 50; DMN+ 80, also its hidden size)")
    r.add_argument("--hops", type=_positive(), help="memory hops, or DMN/DMN+ passes (default 3; DMN: from the "
                                                    "data, see --stop)")
    r.add_argument("--memory", type=_positive(), default=50,
                   help="memory size in sentences (dialog bAbI: utterances) (default 50)")

    m = t.add_argument_group("MemN2N", "--model memn2n (Sukhbaatar et al. 2015)")
    m.add_argument("--encoding", choices=["bow", "pe"], help="sentence encoding (default pe)")
    m.add_argument("--pe-formula", choices=["paper", "official"],
                   help="position encoding: the authors' code (official, fixed J; default) or the paper's text "
                        "(DMN+: the paper's, its default)")
    m.add_argument("--attend-empty", action=argparse.BooleanOptionalAction, default=None,
                   help="empty memory slots take a share of the attention as zero vectors, as in the "
                        "authors' code (default on); --no-attend-empty masks them out")
    m.add_argument("--te", action=argparse.BooleanOptionalAction, default=None,
                   help="temporal encoding (MemN2N: default on; DMN: a learned vector per slot added to the "
                        "facts, an extension of the paper, default off)")
    m.add_argument("--tying", choices=["adjacent", "layerwise"], help="weight tying (default adjacent)")
    m.add_argument("--ls", action=argparse.BooleanOptionalAction, default=None, help="linear start (default on)")
    m.add_argument("--ls-epochs", type=_positive(), help="linear-start epochs (default 20; joint 30)")
    m.add_argument("--rn", action=argparse.BooleanOptionalAction, default=None, help="random noise (default on)")

    d = t.add_argument_group("DMN+ and DMN", "--model dmn+ (Xiong et al. 2016) and --model dmn (Kumar et al. 2016)")
    d.add_argument("--dropout-at", choices=["facts", "sentences"],
                   help="DMN+: where dropout acts before the episodes: the fused facts (default) or the "
                        "position-encoded sentences before fusion (the paper's text); the final memory in both")
    d.add_argument("--buckets", type=_positive(), metavar="K",
                   help="DMN+ and EntNet: draw each training batch from stories of similar length (at most K lengths) and "
                        "compute it at its own length instead of the whole memory's: faster on tasks whose "
                        "stories vary in length (default: off)")
    d.add_argument("--no-supervise", dest="supervise", action="store_false", default=None,
                   help="DMN: train without the supporting facts (default: strongly supervised gates)")
    d.add_argument("--stop", action=argparse.BooleanOptionalAction, default=None,
                   help="DMN: the paper's criterion for stopping, a learned end-of-passes candidate of the gates "
                        "(passes: the most supporting facts plus one, unless --hops; default on where the gates "
                        "are supervised; --no-stop: --hops fixed passes, default 3)")
    d.add_argument("--embed-init", type=_positive(float), metavar="A",
                   help="DMN, DMN+, LSTM: word embeddings start uniform in (-A, A) (defaults: DMN and DMN+ "
                        "sqrt(3), LSTM 1, attn-lstm 0.05)")
    d.add_argument("--glove", metavar="FILE",
                   help="start the word embeddings of --model dmn or dmn+ from a GloVe text file (the words it covers; "
                        "--dim defaults to its vectors' size)")
    d.add_argument("--glove-freeze", action="store_true", help="keep the GloVe vectors fixed during training")

    n = t.add_argument_group("MemNN", "--model memnn (Weston et al. 2015), strongly supervised")
    n.add_argument("--adaptive", action=argparse.BooleanOptionalAction, default=None,
                   help="MemNN: adaptive memory, a STOP memory ends the hops (then --hops is the most hops; default off)")
    n.add_argument("--ngrams", type=_positive(), metavar="N",
                   help="MemNN: features of the 2..N-grams as well as the words (default 1: bag of words)")
    n.add_argument("--nonlinear", action=argparse.BooleanOptionalAction, default=None,
                   help="MemNN: a tanh layer on the input's embedding in the O and R modules (default off)")
    n.add_argument("--unseen", action=argparse.BooleanOptionalAction, default=None,
                   help="MemNN: model words never seen in training by their context and exact matches (default off)")
    n.add_argument("--margin", type=_positive(float), help="MemNN: the ranking loss's margin gamma (default 0.1)")
    n.add_argument("--negatives", type=_positive(), metavar="K",
                   help="MemNN: sample K wrong memories and words per example and step (default: all of them)")

    qe = t.add_argument_group("QRN and EntNet", "--model qrn (Seo et al. 2017) and --model entnet (Henaff et al. 2017)")
    qe.add_argument("--layers", type=_positive(), help="QRN: layers stacked (default 2)")
    qe.add_argument("--init-std", type=_positive(float), metavar="S",
                    help="QRN: the embedding and gate weights start N(0, S^2) (default 0.3, chosen on validation; "
                         "the authors' 1); EntNet: every weight (default 0.1)")
    qe.add_argument("--slots", type=_positive(), help="EntNet: memory slots (default 20)")
    qe.add_argument("--prelu-init", type=_nonnegative(float), metavar="A",
                    help="EntNet: the PReLU slopes start at A (default 0.25; the authors' code: 1)")
    qe.add_argument("--biases", action=argparse.BooleanOptionalAction, default=None,
                    help="EntNet: a gate bias per slot and a bias of U, as the authors' code (default off, the paper)")
    qe.add_argument("--story-mask-std", type=_nonnegative(float), metavar="S",
                    help="EntNet: the story's position masks start from N(0, S^2) (default 0: at 1, bag of words; "
                         "the authors' code: 0.1)")

    dg = t.add_argument_group("Dialog", "--set dialog: --model memn2n-dialog and embeddings-dialog (Bordes et al. 2017)")
    dg.add_argument("--match", action=argparse.BooleanOptionalAction, default=None,
                    help="the match-type features of the candidates (memn2n-dialog default on; embeddings-dialog off)")
    dg.add_argument("--type-words", action=argparse.BooleanOptionalAction, default=None,
                    help="each word the knowledge base types adds its type's vector to memory and query, so that an "
                         "entity never seen in training still reads as one (memjax's addition; default off)")

    t.add_argument_group("LSTM baselines",  # no flags of their own: a title and a line in the help
                         "--model lstm and attn-lstm (no flags of their own: the recipe's flags act on them, "
                         "and --embed-init)")

    g = t.add_argument_group("devices, processes and compilation")
    g.add_argument("--devices", type=_positive(), metavar="N",
                   help="use the first N devices (default: all): runs are split over them, or, when the runs "
                        "cannot be split (one run), each batch is (data parallel). On a CPU, memjax makes one "
                        "device per core; MEMJAX_CPU_DEVICES=N makes N")
    g.add_argument("--coordinator", metavar="HOST:PORT",
                   help="train with several processes through jax.distributed: process 0's address "
                        "(or $MEMJAX_COORDINATOR); with --num-processes and --process-id")
    g.add_argument("--num-processes", type=_positive(), metavar="N", help="processes in all ($MEMJAX_NUM_PROCESSES)")
    g.add_argument("--process-id", type=int, metavar="I", help="this process, 0..N-1 ($MEMJAX_PROCESS_ID)")
    g.add_argument("--compile-cache", action=argparse.BooleanOptionalAction, default=True,
                   help="keep compiled programs on disk, so that a repeated command skips compilation "
                        "(default on; folder $MEMJAX_CACHE, else ~/.cache/memjax/xla)")

    # the data and output flags again (t's own group)
    t.add_argument("--train-file", metavar="FILE",
                   help="train on your own data instead of bAbI: a JSON-lines (.jsonl) or bAbI-format text file "
                        "(see README, 'Your own data'); needs --test-file")
    t.add_argument("--test-file", metavar="FILE", help="your own test questions (with --train-file)")
    t.add_argument("--valid-file", metavar="FILE",
                   help="your own validation questions (default: a seeded 10%% of --train-file)")
    t.add_argument("--out", help="write results.json, metrics.jsonl, checkpoints and the selected models to this "
                                 "folder (a fresh run replaces the checkpoints it held); metrics.jsonl grows as "
                                 "the training goes")
    t.add_argument("--tensorboard", metavar="DIR",
                   help="write TensorBoard event files to DIR as the training goes (loss, train and validation "
                        "error per epoch; a run per task and seed); needs pip install 'memjax[tensorboard]'")
    t.add_argument("--resume", metavar="DIR",
                   help="continue the interrupted run whose --out folder is DIR, with its own arguments "
                        "(only --data may change)")
    t.add_argument("--quiet", action="store_true", help="print only the table (no progress)")

    e = sub.add_parser("eval", help="evaluate a trained model on bAbI tasks",
                       description="Evaluate the models a run saved (memjax train --out DIR) and print the same "
                                   "per-task table as training. Defaults: the run's own set, tasks and data.")
    e.add_argument("--checkpoint", required=True, metavar="DIR", help="the --out folder of a training run")
    e.add_argument("--data", help=f"bAbI tasks_1-20_v1-2 folder (default: the run's, else ${ENV_VAR})")
    e.add_argument("--set", help="data set subfolder (default: the run's)")
    e.add_argument("--tasks", help="tasks: 1, 1,2,5-7 or all (default: the run's)")
    e.add_argument("--valid", choices=["release", "holdout"], help="validation split (default: the run's)")
    e.add_argument("--test-file", metavar="FILE",
                   help="evaluate on your own questions (JSON lines or bAbI text) instead of bAbI")
    e.add_argument("--out", help="write results.json to this folder")

    a = sub.add_parser("ask", help="ask a trained model about a story, line by line",
                       description="Read a story line by line (interactively or from standard input); a line "
                                   "ending in '?' is a question: print the answer, its probability and the "
                                   "statements each hop attended to. An empty line, or a bAbI line numbered 1, "
                                   "starts a new story.")
    a.add_argument("--checkpoint", required=True, metavar="DIR", help="the --out folder of a training run")
    a.add_argument("--task", help="which task's model, when the run trained several (a number, or joint)")
    a.add_argument("--show", type=_positive(), default=3, help="statements shown per hop (default 3)")
    # the limits' defaults are memjax.infer.Limits' (not imported here: it imports JAX); a test checks the help
    a.add_argument("--max-line", type=_positive(), metavar="BYTES",
                   help="the longest input line (default 65536 bytes); a longer one is skipped with a message")
    a.add_argument("--max-statement-words", type=_positive(), metavar="N",
                   help="the most words in a statement or a question (default 1000)")
    a.add_argument("--max-story", type=_positive(), metavar="N",
                   help="the most statements in a story (default 1000). A story that loses a statement to a limit "
                        "answers no question until a new story starts")

    c = sub.add_parser("chat", help="talk with a model trained on dialog bAbI (--set dialog)",
                       description="A conversation, one user turn per line (interactively or from standard input): "
                                   "the bot answers each with one of its candidate utterances. When it issues an "
                                   "api_call, memjax runs it against the knowledge base and writes the results "
                                   "into the memory, and the bot goes on. '<SILENCE>' lets the bot speak again; "
                                   "'/reset' starts a new conversation.")
    c.add_argument("--checkpoint", required=True, metavar="DIR", help="the --out folder of a dialog training run")
    c.add_argument("--task", help="which task's model, when the run trained several")
    c.add_argument("--kb", metavar="FILE",
                   help="the knowledge base api_call reads (default: dialog-babi-kb-all.txt of the dialog data, "
                        "$MEMJAX_DIALOG_DATA or the data home)")
    c.add_argument("--show", type=_nonnegative(), default=0, metavar="N",
                   help="print the N utterances each hop read most (default 0: none)")
    c.add_argument("--max-line", type=_positive(), metavar="BYTES",
                   help="the longest turn (default 65536 bytes); a longer one is skipped with a message")

    s = sub.add_parser("serve", help="a JSON API and a web page that answer questions (or converse, with a dialog "
                                     "model) with a trained model",
                       description="Serve a trained model: POST /answer (a story and a question) returns the "
                                   "answer, its probability and the attention per hop; GET /health; GET / is a "
                                   "page to pick a bAbI story or type one and see the attention as a heat map. "
                                   "A dialog model (train --set dialog) converses instead: POST /chat (the "
                                   "conversation so far and the user's turn) returns the bot's turns, and GET / "
                                   "is a chat page.")
    s.add_argument("--checkpoint", required=True, metavar="DIR", help="the --out folder of a training run")
    s.add_argument("--task", help="which task's model, when the run trained several (a number, or joint)")
    s.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    s.add_argument("--port", type=_positive(), default=8000, help="port (default 8000)")
    s.add_argument("--data", help=f"bAbI folder for the page's example stories (default: the run's, else ${ENV_VAR})")
    s.add_argument("--kb", metavar="FILE",
                   help="a dialog model's knowledge base, which api_call reads (default, as memjax chat's: "
                        "dialog-babi-kb-all.txt of the dialog data, $MEMJAX_DIALOG_DATA or the data home)")
    s.add_argument("--allowed-host", action="append", metavar="NAME",
                   help="a host name requests may be addressed to besides localhost and --host, such as a reverse "
                        "proxy's (repeatable; '*' accepts any; others get 400)")
    s.add_argument("--request-timeout", type=_seconds, default=10.0, metavar="SECONDS",
                   help="seconds a request has to arrive whole, headers and body, before the connection is closed "
                        "(with a 408 if part of it came; default 10)")

    n = sub.add_parser("generate", help="write generated bAbI-style stories of any length (bAbI text format)",
                       description="Generate single, two or three supporting-fact questions (as bAbI tasks 1-3) "
                                   "over stories of exactly --length statements, written in the bAbI format; "
                                   "train on them with memjax train --train-file ... --memory N.")
    n.add_argument("--kind", choices=["single", "two", "three"], default="single")
    n.add_argument("--questions", type=_positive(), default=1000, help="questions, each with its own story")
    n.add_argument("--length", type=_positive(), default=50, help="statements per story (at least 3)")
    n.add_argument("--people", type=_positive(), default=4)
    n.add_argument("--places", type=_positive(), default=6)
    n.add_argument("--objects", type=_positive(), default=3)
    n.add_argument("--distractors", type=int, default=0, help="people who move about but are never asked about")
    n.add_argument("--seed", type=int, default=0)
    n.add_argument("--out", required=True, metavar="FILE")

    g = sub.add_parser("plot", help="draw training curves and attention heat maps as PNG files",
                       description="Draw a run's training curves (loss, train and validation error per epoch, "
                                   "from DIR/metrics.jsonl), and with --story the attention of its model over a "
                                   "story, hop by hop. Needs matplotlib (pip install 'memjax[plot]').")
    g.add_argument("--run", required=True, metavar="DIR", help="the --out folder of a training run")
    g.add_argument("--story", metavar="FILE",
                   help="a story to draw the attention for: statements one per line, the last line a question "
                        "ending in '?'")
    g.add_argument("--task", help="which task's model or curves, when the run trained several")
    g.add_argument("--out", metavar="DIR", help="folder for the PNG files (default: DIR/plots)")

    d = sub.add_parser("data", help="download, import or list bAbI (and dialog bAbI) in memjax's data home",
                       description="memjax's data home is $MEMJAX_HOME/data (default ~/.cache/memjax/data). Commands "
                                   f"given neither --data nor ${ENV_VAR} read bAbI there, downloading it on first use.")
    dsub = d.add_subparsers(dest="data_command", required=True)
    dataset = dict(choices=["babi", "dialog-babi"], default="babi",
                   help="babi: bAbI tasks 1-20 (tasks_1-20_v1-2.tar.gz, the default); dialog-babi: the dialog bAbI "
                        "tasks 1-6 (dialog-bAbI-tasks.tgz, Bordes et al. 2017), checked by size and each file's md5")
    dd = dsub.add_parser("download", help="download the bAbI release (tasks_1-20_v1-2.tar.gz), verify and unpack it "
                                          "(--dataset dialog-babi: dialog bAbI)")
    dd.add_argument("--dataset", **dataset)
    dd.add_argument("--set", default="all", choices=[*BABI_VARIANTS, "all"],
                    help="the bAbI variant you want (the archive holds them all): its folder is printed (default all)")
    dd.add_argument("--url", help="download from this URL, e.g. a mirror (default: the official URL, then a fallback)")
    dd.add_argument("--sha256", type=_sha256, metavar="HEX",
                    help="the bAbI archive's sha256 (default: the official one; dialog bAbI has none)")
    di = dsub.add_parser("import", help="verify and unpack a bAbI (or dialog bAbI) archive already on disk "
                                        "(for offline machines)")
    di.add_argument("file", metavar="FILE",
                    help="the archive, tasks_1-20_v1-2.tar.gz (dialog-bAbI-tasks.tgz with --dataset dialog-babi)")
    di.add_argument("--dataset", **dataset)
    di.add_argument("--sha256", type=_sha256, metavar="HEX",
                    help="the bAbI archive's sha256 (default: the official one; dialog bAbI has none)")
    dsub.add_parser("list", help="show which bAbI variants, and whether dialog bAbI, are in the data home, and where")
    return p


# memjax train --config FILE: a TOML file whose keys are the flags' names (dashes or underscores) or the
# config fields they set, at the top level; or, in a [model] table, the model's config fields (results.json's
# config.model; family: the --model) and, in a [train] table, TrainConfig's (config.train). Each key maps to
# the flag's dest: its value becomes that flag's default, so that the flags given still win.
_MODEL_KEYS = {"memory_size": "memory", "dim": "dim", "hops": "hops", "encoding": "encoding",
               "pe_formula": "pe_formula", "temporal": "te", "attend_empty": "attend_empty", "tying": "tying",
               "supervise": "supervise", "stop": "stop", "embed_init": "embed_init", "dropout_at": "dropout_at",
               "adaptive": "adaptive", "ngrams": "ngrams", "nonlinear": "nonlinear", "unseen": "unseen",
               "margin": "margin", "negatives": "negatives", "layers": "layers", "init_std": "init_std",
               "slots": "slots", "match": "match", "type_words": "type_words", "prelu_init": "prelu_init",
               "biases": "biases", "story_mask_std": "story_mask_std"}
_TRAIN_KEYS = {"epochs": "epochs", "batch_size": "batch_size", "lr": "lr", "optimizer": "optimizer",
               "decay_every": "decay_every", "cycle_epochs": "cycle_epochs", "lr_min": "lr_min",
               "linear_start": "ls", "ls_epochs": "ls_epochs", "random_noise": "rn",
               "dropout": "dropout", "weight_decay": "weight_decay", "patience": "patience", "buckets": "buckets"}
_NOT_IN_FILES = ("help", "config", "resume")  # --resume repeats a run's own arguments


def _read_config(path: str, train: argparse.ArgumentParser) -> dict:
    """The values a ``--config`` TOML file gives the flags of ``train``, by dest, checked as the flags
    would be. Raises ValueError (one line naming the file, and the key) for a missing, unreadable or
    malformed file, an unknown key, a key given twice or a value of the wrong type."""
    import difflib
    import re
    import tomllib

    try:
        kind = _not_a_file(path)
        if kind:  # a pipe or a device would be read without end
            raise ValueError(f"{path}: cannot read the config file ({kind})")
        # utf-8-sig: a leading byte-order mark (Windows editors write one) is not TOML
        text = Path(path).read_bytes().decode("utf-8-sig")
        table = tomllib.loads(text)
    except FileNotFoundError:
        raise ValueError(f"{path}: config file not found") from None
    except OSError as e:
        raise ValueError(f"{path}: cannot read the config file ({e.strerror or e})") from None
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: not a valid TOML file (not UTF-8: {e})") from None
    except tomllib.TOMLDecodeError as e:
        hint = ""
        if re.search(r"(?m)^\s*model\s*=", text) and re.search(r"(?m)^\s*\[\s*model\s*\]", text):
            hint = " (the top-level model = ... and the [model] table are one key: write family = ... in [model])"
        raise ValueError(f"{path}: not a valid TOML file: {e}{hint}") from None
    actions = {a.dest: a for a in train._actions if a.dest not in _NOT_IN_FILES}
    top = {**{dest: dest for dest in actions}, **_MODEL_KEYS, **_TRAIN_KEYS}
    tables = {"model": {**_MODEL_KEYS, "family": "model"}, "train": _TRAIN_KEYS}
    values, given = {}, {}

    def put(name: str, key: str, value, keys: dict):
        norm = key.replace("-", "_")
        dest = keys.get(norm)
        if dest is None:
            close = difflib.get_close_matches(norm, list(keys), n=1)
            if keys is not top and norm in top:
                hint = f" ({key} is a top-level key)"
            elif norm == "family":
                hint = " (at the top level: model)"
            elif norm in _NOT_IN_FILES:
                hint = f" (--{key} is for the command line only)"
            else:
                hint = f" (did you mean {close[0]}?)" if close else ""
            raise ValueError(f"{path}: unknown key {name}{hint}")
        if dest in given:
            raise ValueError(f"{path}: {given[dest]} and {name} set the same flag, {actions[dest].option_strings[0]}")
        given[dest] = name
        values[dest] = _config_value(path, name, value, actions[dest])

    for key, value in table.items():
        if key in tables and isinstance(value, dict):
            for k, v in value.items():
                put(f"{key}.{k}", k, v, tables[key])
        else:
            put(key, key, value, top)
    return values


def _config_value(path: str, name: str, value, action: argparse.Action):
    """A config file's value for ``action``'s flag, as parsing the flag would give it."""
    shown = json.dumps(value, default=str)

    def expected(what: str) -> ValueError:
        return ValueError(f"{path}: {name}: expected {what}, got {shown}")

    if action.nargs == 0:  # --joint, --te/--no-te, --no-supervise, ...
        if not isinstance(value, bool):
            raise expected("true or false")
        return value
    if action.type is not None:  # numbers
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise expected("a number")
        try:
            action.type("0.5")
            whole = False
        except (ValueError, argparse.ArgumentTypeError):
            whole = True
        if whole and not isinstance(value, int):
            raise expected("a whole number")
        try:
            return action.type(str(value))
        except (ValueError, argparse.ArgumentTypeError) as e:
            raise ValueError(f"{path}: {name}: {e}") from None
    if action.dest == "tasks":  # also a number or an array of numbers: tasks = [1, 2, 5]
        if isinstance(value, list) and value and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            value = ",".join(map(str, value))
        elif isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        elif not isinstance(value, str):
            raise expected("a task list: 1, \"1,2,5-7\", \"all\" or [1, 2, 5]")
        try:
            parse_tasks(value)
        except DataError as e:
            raise ValueError(f"{path}: {name}: {e}") from None
        return value
    if not isinstance(value, str):
        raise expected("a string")
    if action.choices is not None and value not in action.choices:
        raise expected("one of " + ", ".join(f'"{c}"' for c in action.choices))
    return value


# The files each command reads, (dest, flag): each is checked before the command starts, so that a folder,
# a pipe or an unreadable file given for one is one line and exit status 2, not a traceback.
_INPUT_FILES = {"train": (("train_file", "--train-file"), ("test_file", "--test-file"), ("valid_file", "--valid-file"),
                          ("glove", "--glove")),
                "eval": (("test_file", "--test-file"),), "plot": (("story", "--story"),), "data": (("file", ""),),
                "chat": (("kb", "--kb"),), "serve": (("kb", "--kb"),)}


def _not_a_file(path: str) -> str | None:
    """What ``path`` is when it exists but is not a regular file ("a folder", ...), else None. Raises
    OSError (FileNotFoundError, ...) when it cannot be looked at."""
    mode = os.stat(path).st_mode
    if stat.S_ISDIR(mode):
        return "a folder"
    return None if stat.S_ISREG(mode) else "not a regular file: a device, pipe or socket"


def _check_inputs(args) -> None:
    """Raises ValueError (one line: the path, the problem, the flag) unless every file the command reads
    is a regular file this process can open."""
    for dest, flag in _INPUT_FILES.get(args.command, ()):
        path = getattr(args, dest, None)
        if not path:
            continue
        named = f" ({flag})" if flag else ""
        try:
            kind = _not_a_file(path)
            if kind is None:
                open(path, "rb").close()  # the permission (stat cannot tell for every user, root included)
        except OSError as e:
            raise ValueError(unreadable(path, e) + named) from None
        if kind == "a folder":
            raise ValueError(f"{path}: is a folder, not a file{named}")
        if kind:
            raise ValueError(f"{path}: {kind}{named}")


def _subcommand(parser: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser:
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices[name]


def _sha256(text):
    if len(text) != 64 or any(c not in "0123456789abcdefABCDEF" for c in text):
        raise argparse.ArgumentTypeError(f"expected 64 hexadecimal digits, got {text!r}")
    return text.lower()


def _duration(seconds: float) -> str:
    """``42s``, ``3m07s``, ``2h05m``."""
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s // 60 % 60:02d}m"


class TrainingProgress:
    """The training's progress on stderr, after each chunk of epochs of each family of runs: epoch / total,
    time left, training examples per second, the latest loss and validation error. On a terminal a live
    display (rich) with a row per family, redrawn; elsewhere (a file, a pipe) a plain line per chunk, no
    control characters; nothing when disabled (--quiet). :meth:`close` ends the live display."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.terminal = enabled and sys.stderr.isatty()
        self.live = None  # rich.progress.Progress once the first report came, on a terminal
        self.rows: dict[str, int] = {}  # family -> its row in the live display

    def _display(self):
        if self.live is None:
            from rich.console import Console
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

            # redrawn when a report comes, not by a thread: a chunk is what changes the numbers
            self.live = Progress(TextColumn("{task.description}"), BarColumn(bar_width=20),
                                 TextColumn("{task.fields[text]}"), TimeElapsedColumn(),
                                 console=Console(file=sys.stderr), auto_refresh=False, transient=False)
            self.live.start()
        return self.live

    def __call__(self, report):  # a memjax.train.watch.ChunkReport
        if not self.enabled:
            return
        label = report.family
        what = "joint" if label == "joint" else (f"tasks {label}" if "," in label else f"task {label}")
        eta, rate = report.eta, report.examples_per_second
        if self.terminal:  # short words: a row per family
            parts = [f"epoch {report.epoch}/{report.total}", f"ETA {_duration(eta)}" if eta is not None else "",
                     f"{rate:,.0f} ex/s" if rate is not None else "", f"loss {report.loss:.4g}",
                     f"valid {report.valid_error:.1f}%"]
            live = self._display()
            if label not in self.rows:
                self.rows[label] = live.add_task(what[:30], total=report.total, text="")
            live.update(self.rows[label], completed=report.epoch, total=report.total,
                        text="  ".join(p for p in parts if p))
            live.refresh()
        else:
            parts = [f"epoch {report.epoch}/{report.total}"]
            if eta is not None:
                parts.append(f"ETA {_duration(eta)}")
            if rate is not None:
                parts.append(f"{rate:,.0f} examples/s")
            parts += [f"loss {report.loss:.4g}", f"valid error {report.valid_error:.1f}%"]
            print(f"{what}: " + ", ".join(parts), file=sys.stderr, flush=True)

    def log(self, line: str):
        if self.live is not None:  # above the live display
            self.live.console.print(line, markup=False, highlight=False, soft_wrap=True)
            self.live.refresh()
        else:
            print(line, file=sys.stderr, flush=True)

    def close(self):
        if self.live is not None:
            self.live.stop()
            self.live = None


def _train(args) -> int:
    from memjax.train.protocol import format_table, run_babi

    if args.resume and (args.tasks or args.joint or args.train_file or args.out or args.epochs or args.seeds != 1
                        or args.first_seed):
        raise ValueError("--resume DIR repeats the run's own arguments: give only --data (and output flags)")
    if args.train_file or args.test_file or args.valid_file:
        if not (args.train_file and args.test_file):
            raise ValueError("your own data needs both --train-file and --test-file")
        if args.tasks or args.joint:
            raise ValueError("--tasks and --joint are for bAbI; your own files are trained as one dataset")
    files = {"train": args.train_file, "test": args.test_file, "valid": args.valid_file} if args.train_file else None
    dialog = args.set == "dialog"
    if dialog and args.model == "memn2n":  # MemN2N on dialog bAbI is its response selector
        args.model = "memn2n-dialog"
    tasks = parse_tasks(args.tasks or "1", tasks=6 if dialog else 20)
    from memjax.distributed import initialize

    if initialize(args.coordinator, args.num_processes, args.process_id):
        import jax

        if args.resume:
            raise ValueError("--resume is for one process: resume a multi-process run's checkpoints in one process")
        if jax.process_index() != 0:  # one process writes and prints; the others only train
            args.out, args.quiet, args.tensorboard = None, True, None
    elif args.compile_cache:
        enable_compilation_cache()
    progress = TrainingProgress(not args.quiet)
    model_overrides = {"hops": args.hops, "dim": args.dim, "encoding": args.encoding,
                       "pe_formula": args.pe_formula, "temporal": args.te, "tying": args.tying,
                       "attend_empty": args.attend_empty, "supervise": args.supervise,
                       "adaptive": args.adaptive, "ngrams": args.ngrams, "nonlinear": args.nonlinear,
                       "unseen": args.unseen, "margin": args.margin, "negatives": args.negatives,
                       "embed_init": args.embed_init, "stop": args.stop, "dropout_at": args.dropout_at,
                       "layers": args.layers, "init_std": args.init_std, "slots": args.slots, "match": args.match,
                       "type_words": args.type_words, "prelu_init": args.prelu_init, "biases": args.biases,
                       "story_mask_std": args.story_mask_std}
    train_overrides = {"epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr,
                       "decay_every": args.decay_every, "cycle_epochs": args.cycle_epochs, "lr_min": args.lr_min,
                       "ls_epochs": args.ls_epochs,
                       "linear_start": args.ls, "random_noise": args.rn, "optimizer": args.optimizer,
                       "dropout": args.dropout, "weight_decay": args.weight_decay, "patience": args.patience,
                       "buckets": args.buckets}
    log = (lambda s: None) if args.quiet else progress.log
    try:
        if args.resume:
            from memjax.train.protocol import resume_babi

            results = resume_babi(args.resume, data=args.data, log=log, report=progress, tensorboard=args.tensorboard)
            args.out, args.model, args.set, args.seeds = args.resume, results["model"], results["set"], \
                results["config"]["seeds"]
            args.joint = results["config"]["joint"]
        else:
            results = run_babi(args.model, args.set, tasks, args.joint, args.seeds, args.data, args.memory,
                               args.valid, model_overrides, train_overrides, args.out, log=log, report=progress,
                               tensorboard=args.tensorboard,
                               files=files, devices=args.devices, glove=args.glove, glove_freeze=args.glove_freeze,
                               first_seed=args.first_seed)
            args.set = results["set"]
    finally:
        progress.close()  # the live display ends before the table (or an error's line) is printed
    mode = "joint" if args.joint else "per task"
    what = {"own": "your own data", "dialog": "dialog bAbI"}.get(args.set, f"bAbI {args.set}")
    print(f"{args.model} on {what}, {mode}, best of {args.seeds} run(s) on validation")
    print(format_table(results))
    s = results["seconds"]
    print(f"time: {s['total']:.1f}s total ({s['compile']:.1f}s compile, {s['train']:.1f}s train)")
    if args.out:
        print(f"wrote {os.path.join(args.out, 'results.json')}")
    return 0


def _eval(args) -> int:
    from memjax.train.protocol import evaluate_babi, format_table, read_run

    tasks = parse_tasks(args.tasks) if args.tasks else None
    files = None
    if args.test_file:
        run = read_run(args.checkpoint)
        saved = run.get("files") or {}
        # without your own training files, the test file stands in for them (same numbers in each column)
        files = {"train": saved.get("train") or args.test_file, "valid": saved.get("valid"), "test": args.test_file}
    results = evaluate_babi(args.checkpoint, args.set, tasks, args.data, args.valid, args.out,
                            log=lambda s: print(s, file=sys.stderr, flush=True), files=files)
    print(f"{results['model']} from {args.checkpoint} on bAbI {results['set']}")
    print(format_table(results))
    if args.out:
        print(f"wrote {os.path.join(args.out, 'results.json')}")
    return 0


def _ask(args) -> int:
    from memjax.ask import Asker
    from memjax.infer import Answerer, Limits

    given = {"max_line": args.max_line, "max_statement_words": args.max_statement_words, "max_story": args.max_story}
    limits = Limits(**{k: v for k, v in given.items() if v is not None})
    qa = Answerer.load(args.checkpoint, args.task, limits)
    if sys.stdin.isatty():
        print(f"memjax ask: model {qa.label} from {args.checkpoint} ({len(qa.vocab)} words, memory "
              f"{qa.memory_size}). Type statements; end a question with '?'; an empty line starts a new story.",
              file=sys.stderr)
    # the bytes, read a line at a time up to --max-line: a decoding error or a long line is one line's problem
    return Asker(qa, args.show).run(sys.stdin.buffer, sys.stdout, sys.stderr)


def _chat(args) -> int:
    from memjax.chat import Chatbot, converse, default_kb
    from memjax.infer import Limits

    limits = Limits(**({"max_line": args.max_line} if args.max_line else {}))
    bot = Chatbot.load(args.checkpoint, args.task, None, limits)
    bot.kb = default_kb(bot, args.kb)
    if sys.stdin.isatty():
        print(f"memjax chat: dialog task {bot.label} model from {args.checkpoint} ({len(bot.cfg.candidates)} "
              "candidate utterances). Type your turns; <SILENCE> lets the bot go on; /reset starts again.",
              file=sys.stderr)
    return converse(bot, sys.stdin.buffer, sys.stdout, sys.stderr, args.show)


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if getattr(args, "config", None) is not None:  # memjax train --config FILE
        train = _subcommand(parser, "train")
        try:
            train.set_defaults(**_read_config(args.config, train))
        except ValueError as e:
            print(f"memjax: error: {e}", file=sys.stderr)
            return 2
        args = parser.parse_args(argv)  # again: the file's values are the defaults, the flags given win
    configure_xla()  # the CPU split into one device per core, before JAX starts (importing memjax does not)
    try:
        _check_inputs(args)
        if args.command == "train":
            return _train(args)
        if args.command == "eval":
            return _eval(args)
        if args.command == "ask":
            return _ask(args)
        if args.command == "chat":
            return _chat(args)
        if args.command == "generate":
            from memjax.data.generate import generate, write_babi

            questions = generate(args.kind, args.questions, args.length, args.people, args.places, args.objects,
                                 args.distractors, args.seed)
            try:
                write_babi(questions, args.out)
            except OSError as e:  # a folder, a missing folder, no permission: one line
                raise ValueError(f"{args.out}: cannot write it ({e.strerror or e}) (--out)") from None
            print(f"wrote {args.questions} {args.kind}-fact questions over {args.length}-statement stories to {args.out}")
            return 0
        if args.command == "serve":
            from memjax.serve import serve

            return serve(args)
        if args.command == "plot":
            from memjax.plot import plot

            return plot(args)
        if args.command == "data":
            from memjax.data.download import command

            return command(args)
    except DataError as e:
        print(f"memjax: error: {e}", file=sys.stderr)
        return 2
    except ValueError as e:
        print(f"memjax: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("memjax: interrupted", file=sys.stderr)
        return 130
    except Exception as e:
        if _checkpoint_error(e):
            print(f"memjax: error: {e}", file=sys.stderr)
            return 2
        raise
    return 1


def _checkpoint_error(e: Exception) -> bool:
    """Whether ``e`` is a :class:`memjax.train.checkpoint.CheckpointError` (only possible once that
    module has been imported, which the command line does only when it needs it)."""
    module = sys.modules.get("memjax.train.checkpoint")
    return module is not None and isinstance(e, module.CheckpointError)


def run() -> None:
    """The ``memjax`` command: :func:`main`, then a quick exit.

    Once the command has finished, the work a normal exit does is done explicitly (output flushed,
    other threads joined, the ``atexit`` handlers run: logging's, JAX's and any others), and the
    process then ends without tearing the interpreter down: freeing the compiled programs and JAX's
    runtime one object at a time took about 0.25 s of every command on a CPU. ``MEMJAX_FAST_EXIT=off``
    exits the usual way. (In-process callers use :func:`main`, which returns.) When stdout is a pipe
    that its reader has closed (``memjax eval ... | head -1``), the command stops there with status
    141 and no traceback.
    """
    try:
        rc = main() or 0
        sys.stdout.flush()  # here, so that a closed pipe is caught below (output to a pipe is buffered)
    except BrokenPipeError:
        # stdout's reader has gone (memjax ask ... | head -1): stop quietly with 141, what a shell shows for
        # cat or grep killed by SIGPIPE; what is left for stdout goes to /dev/null, not to a second error at exit
        stdout_to_devnull()
        rc = 141
    if os.environ.get("MEMJAX_FAST_EXIT", "on").strip().lower() in ("off", "0", "no", "false"):
        sys.exit(rc)
    sys.stdout.flush()
    sys.stderr.flush()
    for thread in threading.enumerate():
        if thread is not threading.current_thread() and not thread.daemon:
            thread.join()
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(rc)


if __name__ == "__main__":
    run()
