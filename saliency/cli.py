"""`spade-study trojan CONFIG --out MODEL_DIR` and `spade-study saliency CONFIG --out DIR [--model MODEL_DIR] [--shard I/N]`."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from contracts.shards import ShardError


def _trojan_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="spade-study trojan",
                                description="Plant Trojan patches into a classifier by fine-tuning (re-running resumes).")
    p.add_argument("config", type=Path, help="the TOML config (see docs/saliency.md)")
    p.add_argument("--out", type=Path, required=True, help="the model folder: model.pt, trojan.json, trigger pictures")
    p.add_argument("--device", default=None, help="torch device (default: cuda if available)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


def _saliency_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="spade-study saliency",
                                description="The paper's saliency benchmark (Tables 1-2) on a Trojan model, dense vs "
                                            "SPADE (re-running resumes). `spade-study saliency tables DIRS... --out DIR` "
                                            "joins shard folders into one set of tables.")
    p.add_argument("config", type=Path, help="the TOML config (see docs/saliency.md)")
    p.add_argument("--out", type=Path, required=True, help="the results folder (records, tables)")
    p.add_argument("--model", type=Path, default=None, help="the `spade-study trojan` folder (default: config's model_dir)")
    p.add_argument("--shard", default=None, metavar="I/N", help="score only samples of rank r with r %% N == I")
    p.add_argument("--device", default=None, help="torch device (default: cuda if available)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


def _tables_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="spade-study saliency tables",
                                description="Build Tables 1-2 from the records of one or more result folders (shards).")
    p.add_argument("dirs", type=Path, nargs="+", help="result folders of `spade-study saliency`")
    p.add_argument("--out", type=Path, required=True, help="where to write the tables")
    return p


def trojan_main(argv: list[str]) -> int:
    """Entry point of `spade-study trojan`; returns the exit code (2 for a user error)."""
    args = _trojan_parser().parse_args(argv)
    from saliency.errors import SaliencyError

    try:
        from saliency.config import load_trojan_config
        from saliency.trojan import plant, summary

        manifest = plant(load_trojan_config(args.config), args.out, device=args.device, progress=not args.quiet)
        print(summary(manifest))
        print(f"model written: {args.out / 'model.pt'} (triggers: {args.out / 'trojan.json'})")
        return 0
    except SaliencyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted; re-run the same command to resume", file=sys.stderr)
        return 130


def saliency_main(argv: list[str]) -> int:
    """Entry point of `spade-study saliency`; returns the exit code (2 for a user error)."""
    from saliency.errors import SaliencyError

    try:
        if argv and argv[0] == "tables":
            args = _tables_parser().parse_args(argv[1:])
            from saliency.tables import write_tables

            paths = write_tables(args.dirs, args.out)
            print("\n".join(f"written: {p}" for p in paths))
            return 0
        args = _saliency_parser().parse_args(argv)
        from saliency.benchmark import Shard, run_benchmark
        from saliency.config import load_saliency_config
        from saliency.tables import write_tables

        config = load_saliency_config(args.config)
        model_dir = args.model or config.model_dir
        if model_dir is None:
            raise SaliencyError("no Trojan model: pass --model MODEL_DIR or set model_dir in the config")
        shard = Shard.parse(args.shard) if args.shard else None
        run_benchmark(config, model_dir, args.out, shard=shard, device=args.device, progress=not args.quiet)
        paths = write_tables([args.out], args.out)
        print(Path(paths[0]).with_suffix(".md").read_text(encoding="utf-8") if paths else "")
        print("\n".join(f"written: {p}" for p in paths))
        return 0
    except (SaliencyError, ShardError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted; re-run the same command to resume (finished samples are kept)", file=sys.stderr)
        return 130
