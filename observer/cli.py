"""`spade-study observe BUNDLE`: the machine observer answers every study task; results go to BUNDLE/observer/.

    spade-study observe BUNDLE [--network efficientnet_lite0] [--weights FILE] [--layer NAME]
                        [--margin 0.02] [--name NAME] [--flag [--easy-gap 0.10] [--same-regions 0.90]]
                        [--batch-items 4] [--threads N] [--quiet]
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from observer.decision import DEFAULT_EASY_GAP, DEFAULT_MARGIN, DEFAULT_SAME_REGIONS


class UsageError(Exception):
    """A command-line mistake, reported as one `error: ...` line."""


class OneLineParser(argparse.ArgumentParser):
    """argparse that raises instead of printing usage and exiting, so errors stay one line."""

    def error(self, message: str) -> None:  # type: ignore[override]
        """Raise the message as a UsageError."""
        raise UsageError(message)


def _number(low: float, high: float | None = None):
    def parse(text: str) -> float:
        try:
            x = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if not (x >= low and (high is None or x <= high)):
            raise argparse.ArgumentTypeError(f"must lie in [{low}, {high if high is not None else 'inf'}], got {text}")
        return x
    return parse


def _positive_int(text: str) -> int:
    try:
        x = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if x < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {text}")
    return x


def build_parser() -> OneLineParser:
    """The parser of `spade-study observe`."""
    p = OneLineParser(prog="spade-study observe",
                      description="A machine observer answers every task of a study bundle (target region, other "
                                  "region or can't decide) by cosine similarity in a network's embedding; results in "
                                  "BUNDLE/observer/NAME.csv and NAME.json. See docs/observer.md.")
    p.add_argument("bundle", type=Path, help="a study bundle folder (with manifest.json)")
    p.add_argument("--network", default="efficientnet_lite0",
                   help="efficientnet_lite0..4 (offline weights), a torchvision classifier or timm:NAME (default efficientnet_lite0)")
    p.add_argument("--weights", default=None, help="state-dict file of the network (default: its offline weights)")
    p.add_argument("--layer", default=None,
                   help="module whose output (averaged over space) is the embedding (default: the input of the last Linear layer)")
    p.add_argument("--margin", type=_number(0.0, 2.0), default=DEFAULT_MARGIN,
                   help=f"'can't decide' when the two similarities differ by less (default {DEFAULT_MARGIN})")
    p.add_argument("--name", default=None, help="results name (default: the network, plus the layer)")
    p.add_argument("--flag", action="store_true",
                   help="flag tasks as easy (score >= --easy-gap) or impossible (region crops alike >= --same-regions)")
    p.add_argument("--easy-gap", type=_number(0.0, 2.0), default=DEFAULT_EASY_GAP,
                   help=f"score from which a task is flagged easy (default {DEFAULT_EASY_GAP})")
    p.add_argument("--same-regions", type=_number(-1.0, 1.0), default=DEFAULT_SAME_REGIONS,
                   help=f"crop-to-crop similarity from which a task is flagged impossible (default {DEFAULT_SAME_REGIONS})")
    p.add_argument("--batch-items", type=_positive_int, default=4, help="items per forward pass (6 pictures each; default 4)")
    p.add_argument("--threads", type=_positive_int, default=None, help="torch CPU threads (default: torch's)")
    p.add_argument("--device", default=None, help="torch device (default cpu)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def pct(x: float | None) -> str:
    """A rate as a percentage for the terminal ('-' when undefined)."""
    return "-" if x is None else f"{100 * x:.1f}%"


def default_name(network: str, layer: str | None) -> str:
    """The results name of a network and layer: a file stem."""
    label = network if layer is None else f"{network}-{layer}"
    return re.sub(r"[^A-Za-z0-9._-]+", "_", label).strip("._-") or "observer"


def main(argv: list[str] | None = None) -> int:
    """Entry point of `spade-study observe`."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = build_parser().parse_args(argv)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    from contracts.manifest import ManifestError, load_manifest
    from contracts.observer import ObserverError, check_name

    try:
        name = check_name(args.name) if args.name is not None else default_name(args.network, args.layer)
        load_manifest(args.bundle)  # refuse a non-bundle before loading any network
    except (ManifestError, ObserverError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.weights is not None and args.weights != "random" and not Path(args.weights).is_file():
        print(f"error: --weights {args.weights}: no such file", file=sys.stderr)
        return 2
    # torch only once the input is known to be good, and only when some item needs embedding.
    from observer.networks import EmbeddingError, embedding_key, network_label
    from observer.runner import observe_bundle

    def make_embedder():
        """Load the network (called by the runner only when an item needs embedding)."""
        import torch

        from observer.embedding import Embedder

        if args.threads:
            torch.set_num_threads(args.threads)
        try:
            return Embedder(args.network, args.weights, args.layer, args.device)
        except (RuntimeError, AssertionError) as exc:  # torch's words for a device it does not have
            raise EmbeddingError(f"--device {args.device}: {' '.join(str(exc).split())}") from None

    embedding = embedding_key(args.network, args.weights, args.layer)
    flags = {"easy_gap": args.easy_gap, "same_regions": args.same_regions} if args.flag else None
    try:
        report = observe_bundle(args.bundle, make_embedder, embedding, network_label(args.network, args.layer),
                                name=name, margin=args.margin, flags=flags, progress=not args.quiet)
    except (EmbeddingError, ManifestError, ObserverError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{'condition':<10} {'tasks':>5} {'decision rate':>14} {'agreement':>10} {'net agreement':>14}")
    for cond, s in report["summary"].items():
        print(f"{cond:<10} {s['tasks']:>5} {pct(s['decision_rate']):>14} {pct(s['agreement']):>10} {pct(s['net_agreement']):>14}")
    if flags is not None:
        easy = sum(s["flagged_easy"] for s in report["summary"].values())
        impossible = sum(s["flagged_impossible"] for s in report["summary"].values())
        print(f"flagged {easy} task(s) easy and {impossible} impossible")
    print(f"wrote {report['csv']} ({report['tasks']} tasks; {report['embedded_items']} item(s) embedded, "
          f"{report['reused_items']} reused)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
