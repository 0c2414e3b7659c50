"""`spade-study generate CONFIG.toml --out DIR [--shard I/N] [--device D]` and `spade-study generate merge SHARDS... --out DIR`."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from contracts.shards import ShardError


def _generate_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="spade-study generate",
        description="Build (or resume) a study bundle from an image folder. "
                    "`spade-study generate merge SHARD_DIRS... --out DIR` joins shards.")
    p.add_argument("config", type=Path, help="the TOML config (see docs/generation.md)")
    p.add_argument("--out", type=Path, required=True, help="the bundle folder (re-running resumes it)")
    p.add_argument("--shard", default=None, metavar="I/N", help="build only shard I of N (0-based)")
    p.add_argument("--device", default=None, help="torch device, e.g. cpu or cuda (default: cuda if available)")
    p.add_argument("--quiet", action="store_true", help="no progress bars or log lines on stderr")
    return p


def _merge_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="spade-study generate merge",
                                description="Join shard bundles into one bundle identical in items to a single run.")
    p.add_argument("shards", type=Path, nargs="+", help="the shard bundle folders (all N of them)")
    p.add_argument("--out", type=Path, required=True, help="the merged bundle folder")
    return p


def main(argv: list[str]) -> int:
    """Entry point of `spade-study generate`; returns the exit code (2 for a user error)."""
    # heavy imports (torch) only after argument parsing, so --help is instant
    from generation.errors import GenerationError

    try:
        if argv and argv[0] == "merge":
            args = _merge_parser().parse_args(argv[1:])
            from generation.merge import merge

            out = merge(args.shards, args.out)
            print(f"merged {len(args.shards)} shards into {out}")
            return 0
        args = _generate_parser().parse_args(argv)
        from generation.config import load_config
        from generation.pipeline import Shard, generate

        config = load_config(args.config)
        shard = Shard.parse(args.shard) if args.shard else None
        out = generate(config, args.out, shard=shard, device=args.device, progress=not args.quiet)
        print(f"bundle written: {out / 'manifest.json'}")
        return 0
    except (GenerationError, ShardError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted; re-run the same command to resume (finished items are kept)", file=sys.stderr)
        return 130
