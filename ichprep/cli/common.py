"""The options several commands share, declared once, and the way every trainer command resolves a recipe.

Typer reads these objects and never changes them, so one declaration serves every command that
takes the option. torch is imported inside each command, after its arguments are checked, so
`ichprep convert` and `import ichprep.cli` stay light and a typo costs a second.
"""

from __future__ import annotations

from typing import Any

import typer

from ichprep.cli.convert_cmd import HEADER_HELP

DATA = typer.Argument(..., metavar="DATA", help="convert's output: an image folder or HDF5 shards.")
LABELS = typer.Option(None, "--labels", "-l", help="Labels: stage_1_train.csv (long ID,Label) or clean-meta's train.parquet "
                      "(default: the shards' labels, else DATA/train.parquet or DATA/../train.parquet).")
ARCH = typer.Option("resnet18", help="Any timm model, or NAME.TAG for one of its pretrained tags. Curated: resnet18/34/50, "
                    "densenet121/169, efficientnet_b0-b3, seresnext50_32x4d, resnext101_32x8d.fb_wsl_ig1b_ft_in1k (2nd place "
                    "2019), convnext_tiny; sizes and speeds in docs/train.md.")
WEIGHTS = typer.Option(None, help="Start from this .safetensors or .pth state dict in timm's names instead of the "
                       "Hugging Face download (the head is dropped, the stem adapted to the channels).")
PRETRAINED = typer.Option(True, "--pretrained/--no-pretrained", help="Start from the arch's ImageNet weights (downloaded "
                          "once into the Hugging Face cache, HF_HOME; HF_HUB_OFFLINE=1 uses the cache alone) or from random ones.")
STACK = typer.Option("windows", help="windows: every window of each stacked slice (3 x (2 x --neighbours + 1) channels); "
                     "2.5d: the brain window of the previous, this and the next slice (3 channels, the 1st place's input).")
NORM = typer.Option("auto", help="Input normalisation: pretrained (the weights' ImageNet mean/std), data (0.6/0.25), or auto "
                    "(pretrained with trained weights, data from random ones).")
SEED = typer.Option(42, help="Seed of the subset, split, shuffles, augmentation and initialisation.")
MAX_IMAGES = typer.Option(None, "--max-images", min=1, help="Use a seeded subset of N images.")
NEIGHBOURS = typer.Option(0, min=0, help="Neighbouring slices on each side as extra channels (1 -> 9 channels).")
WORKERS = typer.Option(None, min=0, help="DataLoader worker processes (default: 2 on a CPU; on CUDA, the process's share "
                       "of the cores less one).")
DEVICE = typer.Option("auto", help="auto (CUDA if available), cpu, cuda, cuda:1, ...")
QUIET = typer.Option(False, "--quiet", "-q", help="No progress bars.")
TTA = typer.Option(None, "--tta", help="Test-time views to average with, comma-separated: hflip, vflip, transpose "
                   "(all in one forward pass); each must be one the model's training drew (its --flips).")
HEADER = typer.Option(None, "--header", "-H", help=HEADER_HELP)
OPTIMIZER = typer.Option("adamw", help="adamw (decoupled weight decay) or adam (the 2019 winners': weight decay as L2).")
SCHEDULE = typer.Option("one-cycle", help="one-cycle, constant, step:GAMMA (x GAMMA each epoch), multistep:E1,E2:GAMMA, "
                        "or cosine:PERIOD:FLOOR (warm restarts every PERIOD epochs down to FLOOR x lr).")
RECIPE = typer.Option(None, "--recipe", help="Set every option of a published configuration (nobrainer-2019, seutao-2019, "
                      "fastai-2019), each printed with where it is written; options given explicitly win.")
SCALE = typer.Option("full", help="With --recipe: full (as published) or tiny (a tiny network, a few epochs: minutes on a CPU).")
DRY_RUN = typer.Option(False, "--dry-run", help="Print every option as resolved (with a recipe's sources) and exit; "
                       "nothing is created.")
RESUME = typer.Option(False, "--resume", help="Continue from last.pt with the same options.")
STOP_AFTER = typer.Option(None, "--stop-after", min=1, help="Stop after N epochs of this call (resume later with --resume).")

RUNTIME: frozenset[str] = frozenset({"data", "out", "run", "labels", "weights", "device", "quiet", "workers", "resume",
                                     "stop_after", "max_images", "compile_model", "embed_batch"})
"""Options that say where a run reads and writes and how it runs, not what it trains: a dry run does not list them."""


def say(message: str) -> None:
    """A progress line on stderr (stdout is kept for results)."""
    typer.echo(message, err=True)


def resolved_options(ctx: typer.Context, stage: str) -> dict[str, Any]:
    """The command's options with ``--recipe``'s values where not given, printed with their sources (on stdout for a
    ``--dry-run``, which then ends the command: nothing is created)."""
    from ichprep.train.recipes import resolve, show

    params = dict(ctx.params)
    name, scale, dry_run = params.pop("recipe"), params.pop("scale"), params.pop("dry_run")
    given = {k for k in params if (s := ctx.get_parameter_source(k)) is not None and s.name != "DEFAULT"}
    resolved = resolve(name, stage, scale, params, given)
    if dry_run or name is not None:
        flags = {p.name: p for p in ctx.command.params}
        shown = show(resolved, stage, RUNTIME, lambda option, value: spelled(flags[option], value))
        if dry_run:
            typer.echo(shown)
            raise typer.Exit(0)
        say(shown)
    return resolved.options


def spelled(param: Any, value: Any) -> str:
    """An option and its value as one types them: ``--lr 2e-5``, ``--reverse-tta``, ``--no-pretrained``; a flag
    that is off, ``(no --snapshots)``."""
    from ichprep.train.recipes import shown

    if not isinstance(value, bool) or not getattr(param, "is_flag", False):
        return f"{param.opts[0]} {shown(value)}"
    if value:
        return param.opts[0]
    return param.secondary_opts[0] if param.secondary_opts else f"(no {param.opts[0]})"
