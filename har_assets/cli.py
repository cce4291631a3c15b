"""`har`: demo data, the headless pipeline, and the Dagster UI on the embedded defaults."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import warnings
from contextlib import ExitStack, redirect_stdout
from pathlib import Path
from typing import TYPE_CHECKING

from har_assets.home import HarHome, HomeConfigError, RawRootUnavailable
from har_assets.home_lock import HomeBusy, hold_home
from har_assets.ml.label_requests import DEFAULT_MINUTES
from har_assets.ml.mlflow_store import MlflowStoreError, ensure_local_store, sqlite_path
from har_assets.progress import Progress, reporting, wanted
from har_assets.raw.removal import RemovalStateError
from har_assets.raw.scan import raw_root_problem
from har_assets.settings import HarSettings

if TYPE_CHECKING:
    import dagster as dg

LOCAL_MAX_CONCURRENT_RUNS = 2


# Shared by every instance config we ship (local here; dagster.yaml, deploy/ for compose, Docker and Helm, which
# the tests hold equal to this): a run whose worker died is marked failed (its queue slot and pool slots freed)
# and started again once; a failure inside an asset is the assets' retry policy's business, not a run retry.
RUN_RECOVERY = """\
run_launcher:  # DefaultRunLauncher plus a worker health check (har_assets/orchestration/run_health.py)
  module: har_assets.orchestration.run_health
  class: CodeServerRunLauncher
run_monitoring:
  enabled: true
  poll_interval_seconds: 15
  start_timeout_seconds: 180
  cancel_timeout_seconds: 180
  max_resume_run_attempts: 0
  free_slots_after_run_end_seconds: 15
run_retries:
  enabled: true
  max_retries: 1
  retry_on_asset_or_op_failure: false
"""


def local_instance_yaml(max_concurrent_runs: int = LOCAL_MAX_CONCURRENT_RUNS) -> str:
    """The local (embedded) Dagster instance of `har dev` / `har pipeline`: SQLite storage in its folder."""
    return f"""\
# Local (embedded) Dagster instance for `har dev` / `har pipeline`: SQLite storage in this folder.
# The run queue keeps concurrent runs low: SQLite does not like many writers, and the machine has few cores.
# It looks for queued runs every second (Dagster's default, 5 s, left a slot idle after every short run:
# a backfill of 20 participants took 61 s instead of 43 s).
run_coordinator:
  module: dagster._core.run_coordinator
  class: QueuedRunCoordinator
  config:
    dequeue_interval_seconds: 1
concurrency:
  runs:
    max_concurrent_runs: {max_concurrent_runs}
  pools:
    default_limit: 1  # the `training` pool: one training at a time
{RUN_RECOVERY}telemetry:
  enabled: false
"""


def registered_participants(home: HarHome) -> list[str]:
    """The participants registered in the home's Dagster instance (none before its first use)."""
    if not (home.dagster_home / "storage").exists():
        return []
    import dagster as dg

    from har_assets.orchestration.partitions import participants

    with dg.DagsterInstance.from_config(str(home.dagster_home)) as instance:
        return instance.get_dynamic_partitions(participants.name)


def ensure_local_instance(home: HarHome) -> None:
    """The home's local Dagster instance config, written (or upgraded from an older version of ours)."""
    home.dagster_home.mkdir(parents=True, exist_ok=True)
    instance_yaml, wanted = home.dagster_home / "dagster.yaml", local_instance_yaml()
    if not instance_yaml.exists() or (instance_yaml.read_text() != wanted  # ours from an older version: upgrade it
                                      and instance_yaml.read_text().startswith(wanted.splitlines()[0])):
        instance_yaml.write_text(wanted)


def prepare_home(home: HarHome, *, demo_participants: int, demo_minutes: float, seed: int,
                 progress: Progress | None = None) -> list[str]:
    """Create the home layout, its local Dagster instance and (unless a tracking server is set) its MLflow store,
    created whole or found broken (MlflowStoreError, naming the command that mends it); the demo participants
    written, if any.

    The raw root belongs to the user: demo data is written only where the platform creates the raw folder itself,
    in a home that has never registered a participant (written beside it, then renamed into place, so a killed
    write leaves no half study). A missing or empty raw root in a home with registered participants raises
    RawRootUnavailable and changes nothing."""
    from har_assets.demo import write_demo_dataset

    ensure_local_instance(home)
    db = sqlite_path(home.mlflow_tracking_uri())
    if db is not None:  # created whole before any run, or found broken with the command that mends it
        ensure_local_store(db)
    registered = registered_participants(home)
    problem = raw_root_problem(home.raw, len(registered))
    if problem:
        raise RawRootUnavailable(problem)
    if home.raw.exists() or registered:
        if not registered and not any(p.is_dir() for p in home.raw.iterdir()):
            print(f"no participant folders in {home.raw}: copy them there, or write demo data with "
                  f"`har demo-data --out {home.raw}`", file=sys.stderr)
        return []
    for leftover in home.root.glob(".raw-demo-*"):  # a demo write killed earlier
        shutil.rmtree(leftover, ignore_errors=True)
    staging = home.root / f".raw-demo-{os.getpid()}"
    print(f"new home {home.root}: writing {demo_participants} demo participants to {home.raw}", file=sys.stderr)
    ids = write_demo_dataset(staging, demo_participants, seed=seed, minutes=demo_minutes, progress=progress)
    staging.rename(home.raw)
    return ids


def _cmd_demo_data(args: argparse.Namespace) -> int:
    from har_assets.demo import write_demo_dataset

    with reporting() as progress:
        ids = write_demo_dataset(Path(args.out), args.participants, seed=args.seed, minutes=args.minutes,
                                 fmt=args.format, unlabeled=args.unlabeled, progress=progress)
    print(f"wrote {len(ids)} participants to {args.out}: {', '.join(ids)}")
    return 0


def _settings(args: argparse.Namespace) -> HarSettings:
    """The environment's settings, read once; `--home` replaces HAR_HOME."""
    return HarSettings(home=Path(args.home)) if getattr(args, "home", None) else HarSettings()


def _home(args: argparse.Namespace) -> HarHome:
    home = _settings(args).har_home()
    home.preprocess_config(), home.training_config()  # a bad config file stops the command before it writes
    return home


def _local_instance(home: HarHome) -> dg.DagsterInstance:
    """The home's own Dagster instance (its `dagster_home`), whatever DAGSTER_HOME says."""
    import dagster as dg

    ensure_local_instance(home)
    return dg.DagsterInstance.from_config(str(home.dagster_home))


def _cmd_pipeline(args: argparse.Namespace) -> int:
    from har_assets.pipeline_run import run_pipeline

    home = _home(args)
    # stdout carries the summary alone (MLflow prints run links to stdout when it talks to a tracking server)
    with hold_home(home.root, "har pipeline"), redirect_stdout(sys.stderr), reporting(args.json) as progress:
        prepare_home(home, demo_participants=args.demo_participants, demo_minutes=args.demo_minutes, seed=args.seed,
                     progress=progress)
        with _local_instance(home) as instance:
            summary = run_pipeline(home, instance, settings=_settings(args), force=args.force, progress=progress)
    if args.json:
        print(json.dumps(summary, indent=2, sort_keys=True))
    else:
        print(summary_text(summary))
    return 1 if summary["failed"] or summary.get("model", {}).get("status") == "failed" else 0


def summary_text(summary: dict) -> str:
    lines = [f"HAR_HOME {summary['home']}: {len(summary['participants'])} participants "
             f"({summary['materialized']} materialized, {summary['up_to_date']} up to date, "
             f"{len(summary['failed'])} failed)"]
    lines.append(f"{'participant':<14}{'status':<12}{'acc':>9}{'gyro':>9}{'segments':>10}{'windows':>9}  "
                 f"{'predicted (champion)':<50}classes")
    for pid, p in sorted(summary["participants"].items()):
        classes = ", ".join(f"{k}={v}" for k, v in sorted(p["windows_per_class"].items())) or "-"
        lines.append(f"{pid:<14}{p['status']:<12}{p['accelerometer_samples']:>9}{p['gyroscope_samples']:>9}"
                     f"{p['segments']:>10}{p['windows']:>9}  {_prediction_text(p.get('predictions')):<50}{classes}")
    for pid, error in sorted(summary["failed"].items()):
        lines.append(f"FAILED {pid}: {error}")
    for pid, p in sorted(summary["participants"].items()):
        pred = p.get("predictions") or {}
        if pred.get("flagged"):
            lines.append(f"FLAGGED {pid}: {'; '.join(pred.get('flag_reasons') or [])}. The labels that would help "
                         f"most: har labels request {pid}")
    for pid in summary.get("missing", []):
        lines.append(f"MISSING {pid}: raw folder {Path(summary['home']) / 'raw' / pid} not found; its assets are kept "
                     f"and it comes back as it was with its folder (to withdraw it: har participants remove {pid})")
    from har_assets.pipeline_run import model_summary_lines

    lines += model_summary_lines(summary)
    overview = summary.get("overview") or {}
    if overview.get("status") == "failed":
        lines.append(f"COHORT OVERVIEW FAILED: {overview['error']}")
    elif overview:
        lines.append(f"cohort overview ({overview['status']}): {overview['participants']} participants, "
                     f"{overview['participants_differing']} differ from the cohort, "
                     f"{overview['participants_failing_checks']} with failing checks, "
                     f"{overview.get('participants_missing') or 0} missing, "
                     f"{overview.get('participants_flagged') or 0} flagged (Dagster UI: cohort_overview)")
    return "\n".join(lines)


def _prediction_text(pred: dict | None) -> str:
    """Mostly predicted class, mean confidence, label-free accuracy estimate, drift and flags of one participant, or
    '-'."""
    if not pred or pred["status"] == "failed":
        return "-"
    drift = f", {pred['drifted_channels']} drifted ch" if pred.get("drifted_channels") else ""
    estimate = f", est. acc {pred['estimated_accuracy']:.2f}" if pred.get("estimated_accuracy") is not None else ""
    flag = ", FLAGGED" if pred.get("flagged") else ""
    return f"v{pred['model_version']}: {pred['dominant_class']} ({pred['mean_confidence']:.2f}{estimate}{drift}{flag})"


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from har_assets.evaluation.cohort import CohortError
    from har_assets.evaluation.command import open_cohort, run_evaluation
    from har_assets.evaluation.tracking import EvaluationTracker
    from har_assets.ml.variants import (
        ExperimentConfig,
        VariantError,
        apply_overrides,
        build_variants,
        parse_assignments,
    )

    home = _home(args)
    try:
        base = apply_overrides(ExperimentConfig(preprocess=home.preprocess_config(), **dict(home.training_config())),
                               parse_assignments(args.set))
        variants = build_variants(base, args.compare, args.variant, reference=args.reference)
    except VariantError as exc:
        print(f"har evaluate: {exc}", file=sys.stderr)
        return 2
    if args.raw is None:
        prepare_home(home, demo_participants=args.demo_participants, demo_minutes=args.demo_minutes, seed=args.seed)
    raw = Path(args.raw).resolve() if args.raw else home.raw
    tracker = EvaluationTracker(home.mlflow_tracking_uri(), args.experiment, home.mlflow_artifact_location())
    try:
        out = run_evaluation(open_cohort(raw, args.participants), variants, args.folds, args.seeds, tracker,
                             progress=wanted(args.json))
    except (CohortError, ValueError) as exc:
        print(f"har evaluate: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps({k: v for k, v in out.items() if k != "report"}, indent=2))  # variants in their order
    else:
        print(out["report"])
        print(f"\nMLflow: experiment '{args.experiment}', run {out['mlflow']['parent_run_id']} "
              f"({home.mlflow_tracking_uri()})")
    return 1 if out["failed"] else 0


def _cmd_dev(args: argparse.Namespace) -> int:
    home = _home(args)
    # held until dagster dev exits (the descriptor survives the exec below): no `har pipeline` beside the daemon
    lock = ExitStack()  # referenced until the exec: collected, it would release the lock
    lock.enter_context(hold_home(home.root, "har dev", keep_across_exec=True))
    try:
        prepare_home(home, demo_participants=args.demo_participants, demo_minutes=args.demo_minutes, seed=args.seed)
    except RawRootUnavailable as exc:  # the UI still shows the study; the sensor changes nothing while this lasts
        print(f"WARNING: {exc}", file=sys.stderr)
    print(f"HAR_HOME={home.root}  DAGSTER_HOME={home.dagster_home}  UI: http://{args.host}:{args.port}",
          file=sys.stderr)
    dagster = Path(sys.executable).with_name("dagster")
    cmd = [str(dagster), "dev", "-m", "har_assets.definitions", "-h", args.host, "-p", str(args.port)]
    os.chdir(home.root)  # not the repo root, whose dagster.yaml is the PostgreSQL (compose) instance
    # the code server and run workers that `dagster dev` starts read their settings from this environment
    os.execve(cmd[0], cmd, {**os.environ, "HAR_HOME": str(home.root), "DAGSTER_HOME": str(home.dagster_home)})
    return 0  # pragma: no cover


def _cmd_serve(args: argparse.Namespace) -> int:
    from har_assets.redaction import without_credentials
    from har_assets.serving.api import serve
    from har_assets.serving.settings import ServeSettings, key_required_but_missing

    home = _home(args)
    flags = {"MLFLOW_TRACKING_URI": args.tracking_uri, "HAR_MODEL_NAME": args.model_name,
             "HAR_MODEL_ALIAS": args.alias, "HAR_MODEL_VERSION": args.version,
             "HAR_MODEL_POLL_SECONDS": args.poll_seconds}
    # the worker processes read their settings from the environment they inherit: validated here first
    os.environ.update({var: str(value) for var, value in flags.items() if value is not None})
    settings = ServeSettings.from_env(home=home)
    refusal = key_required_but_missing(args.host, settings)
    if refusal:
        print(f"har serve: {refusal}", file=sys.stderr)
        return 2
    target = f"version {settings.version}" if settings.version else f"alias '{settings.alias}'"
    print(f"serving '{settings.model_name}' {target} from {without_credentials(settings.tracking_uri)} "
          f"on http://{args.host}:{args.port} "
          f"(docs: /docs)", file=sys.stderr)
    serve(host=args.host, port=args.port, workers=args.workers, log_level=args.log_level)
    return 0


def _cmd_daemon(args: argparse.Namespace) -> int:
    from har_assets.orchestration.daemon_watchdog import main

    return main(args.server_args)


def _cmd_mlflow_server(args: argparse.Namespace) -> int:
    from har_assets.mlflow_server import MlflowServerConfigError, exec_server

    try:
        exec_server(args.server_args)
    except MlflowServerConfigError as exc:
        print(f"har mlflow-server: {exc}", file=sys.stderr)
        return 2
    return 0


def _participants_instance(args: argparse.Namespace) -> tuple[HarHome, str, dg.DagsterInstance]:
    """The home, who acts (for the audit), and the Dagster instance: the deployed one (`DAGSTER_HOME`, e.g.
    compose's PostgreSQL instance, which the sensors use) unless --home names a local home."""
    import dagster as dg

    home = _home(args)
    by = f"har participants {args.action} ({os.environ.get('USER', 'unknown user')})"
    if os.environ.get("DAGSTER_HOME") and not args.home:
        return home, by, dg.DagsterInstance.get()
    return home, by, _local_instance(home)


def _cmd_participants_remove(args: argparse.Namespace) -> int:

    from har_assets.orchestration.participant_removal import ParticipantRemoval, remove_from_instance

    home, by, instance = _participants_instance(args)
    with instance:
        record = remove_from_instance(instance, ParticipantRemoval.for_home(home), args.participant, by=by,
                                      reason=args.reason)
    if record is None:
        print(f"har participants remove: '{args.participant}' is not a registered participant of {home.root}",
              file=sys.stderr)
        return 2
    print(f"removed '{record.participant}' ({record.reason}): partition deleted, {len(record.files)} stored files "
          f"archived to {record.archived_to}; audit: {home.audit_dir()}. Its raw folder, if still there, is skipped "
          f"from now on; the next split and model are made without it. Undo: har participants restore "
          f"{record.participant}; delete every copy for good: har participants purge {record.participant}")
    return 0


def _cmd_participants_restore(args: argparse.Namespace) -> int:

    from har_assets.orchestration.participant_removal import ParticipantRemoval, restore_to_instance

    home, by, instance = _participants_instance(args)
    with instance:
        restored = restore_to_instance(instance, ParticipantRemoval.for_home(home), args.participant, by=by)
    print(f"restored '{args.participant}': {len(restored['files'])} stored files back in place, partition "
          "registered again with its history; the next split and model include it again")
    return 0


def _cmd_participants_purge(args: argparse.Namespace) -> int:

    from har_assets.definitions import build_resources
    from har_assets.orchestration.participant_removal import ParticipantRemoval, purge_everywhere

    if not args.yes:
        print(f"har participants purge: deletes every copy of '{args.participant}' for good (archive, event log, "
              "pictures, MLflow examples and figures); run again with --yes", file=sys.stderr)
        return 2
    home, by, instance = _participants_instance(args)
    with instance:
        record = purge_everywhere(instance, ParticipantRemoval.for_home(home), build_resources(home)["mlflow_tracking"],
                                  args.participant, by=by)
    deleted = record["deleted"]
    mlflow = deleted["mlflow"]
    print(f"purged '{args.participant}': {len(deleted['files'])} stored objects "
          f"({sum(f['bytes'] for f in deleted['files'])} bytes), {len(deleted['dagster']['runs_deleted'])} runs and "
          f"{deleted['dagster']['events_deleted']} events of batch runs from the event log, "
          f"{len(mlflow['examples_deleted'])} MLflow input examples, {len(mlflow['artifacts_rewritten'])} MLflow "
          f"artifacts rewritten, {len(mlflow['keys_deleted'])} MLflow keys deleted; audit: {home.audit_dir()}")
    if mlflow["not_deletable"]:
        print("not deletable through MLflow's API (delete by hand on the tracking server): "
              + ", ".join(mlflow["not_deletable"]), file=sys.stderr)
    return 0


def _cmd_labels_request(args: argparse.Namespace) -> int:
    from har_assets.evaluation.cohort import DATA_ERRORS
    from har_assets.inference.label_request import requested_minutes
    from har_assets.participant_files import ParticipantFileError, request_labels

    if not args.minutes > 0:
        print(f"har labels request: --minutes must be positive, got {args.minutes}", file=sys.stderr)
        return 2
    try:
        path, request = request_labels(_home(args), _settings(args), args.participant, args.minutes)
    except (ParticipantFileError, *DATA_ERRORS) as exc:
        print(f"har labels request: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {request.height} spans ({requested_minutes(request):.1f} minutes) of '{args.participant}' to "
          f"{path}: fill the activity column and append the rows to raw/{args.participant}/labels.csv; the next "
          "scoring uses them for this person, the next training for the model")
    if request.height:
        for start, end, guess, confidence in request.select("start", "end", "model_guess", "guess_confidence").rows():
            print(f"  {start} - {end}  model's guess: {guess} ({confidence:.2f})")
    return 0


def _cmd_predictions_export(args: argparse.Namespace) -> int:
    from har_assets.evaluation.cohort import DATA_ERRORS
    from har_assets.participant_files import ParticipantFileError, export_predictions

    try:
        path, rows = export_predictions(_home(args), args.participant, args.format,
                                        Path(args.out) if args.out else None)
    except (ParticipantFileError, *DATA_ERRORS) as exc:
        print(f"har predictions export: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {rows} windows of '{args.participant}' to {path}")
    return 0


HOME_HELP = "home folder (default $HAR_HOME or ./data)"
DEMO_HELP = "demo participants written if the home is new (no raw/ yet, nobody ever registered)"

EVALUATE_HELP = """\
Cross-validate by participant: each fold's test people are never seen in training. Every variant
is trained and tested on the same folds with the platform's own preprocessing and training code
(the `model` asset's), and the report gives per variant macro-F1 mean ± sd over folds, per-class F1,
per-participant scores, the pooled confusion matrix, time, and paired differences against the first
variant. Logged to MLflow: one parent run, a nested run per variant and per fold.

  har evaluate --raw study/raw --compare gravity=remove,keep,separate
  har evaluate --raw study/raw --set train.epochs=40 --compare train.lr_schedule=constant,cosine
  har evaluate --raw study/raw --reference --seeds 0 1

Exit status: 0 all folds ran, 1 some fold failed (the report says which and why), 2 bad arguments or
an unreadable cohort.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="har", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo-data", help="write synthetic participants in the raw watch-export format")
    demo.add_argument("--participants", type=int, default=12)
    demo.add_argument("--out", required=True)
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--minutes", type=float, default=8.0)
    demo.add_argument("--format", choices=["xlsx", "csv"], default="xlsx")
    demo.add_argument("--unlabeled", type=int, default=0, help="the last N participants get no labels.csv")
    demo.set_defaults(func=_cmd_demo_data)

    for name, func, text in (
        ("pipeline", _cmd_pipeline, "register participants and materialize every asset headlessly"),
        ("dev", _cmd_dev, "run the Dagster UI and daemon (dagster dev) on HAR_HOME"),
    ):
        p = sub.add_parser(name, help=text)
        p.add_argument("--home", help=HOME_HELP)
        p.add_argument("--demo-participants", type=int, default=12, help=DEMO_HELP)
        p.add_argument("--demo-minutes", type=float, default=8.0)
        p.add_argument("--seed", type=int, default=0)
        p.set_defaults(func=func)
        if name == "pipeline":
            p.add_argument("--json", action="store_true", help="print a machine-readable summary")
            p.add_argument("--force", action="store_true", help="re-materialize participants that are up to date")
        else:
            p.add_argument("--host", default="127.0.0.1")
            p.add_argument("--port", type=int, default=3000)

    ev = sub.add_parser("evaluate", help="leave-participants-out cross-validation of a labelled cohort, "
                                          "comparing settings", description=EVALUATE_HELP,
                        formatter_class=argparse.RawDescriptionHelpFormatter)
    ev.add_argument("--home", help="home folder (default $HAR_HOME or ./data): MLflow store, preprocess.json")
    ev.add_argument("--raw", help="folder of participant folders (default: the home's raw/, demo data if empty)")
    ev.add_argument("--participants", nargs="+", help="evaluate only these participants")
    ev.add_argument("--folds", type=int, default=5, help="folds by participant (default 5)")
    ev.add_argument("--seeds", type=int, nargs="+", default=[0], help="training seeds; each repeats every fold")
    ev.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="change a setting of every variant, e.g. gravity=keep or train.epochs=40")
    ev.add_argument("--compare", action="append", default=[], metavar="KEY=V1,V2",
                    help="one variant per value (several --compare: every combination)")
    ev.add_argument("--variant", action="append", default=[], metavar="NAME:KEY=V,KEY=V",
                    help="a named variant with several settings changed")
    ev.add_argument("--reference", action="store_true",
                    help="add the plain reference (CNN-BiLSTM, gravity kept, Adam 1e-3, 30 epochs)")
    ev.add_argument("--experiment", default="har-evaluate", help="MLflow experiment (default har-evaluate)")
    ev.add_argument("--json", action="store_true", help="print a machine-readable result, no progress bar")
    ev.add_argument("--demo-participants", type=int, default=12, help=DEMO_HELP)
    ev.add_argument("--demo-minutes", type=float, default=8.0)
    ev.add_argument("--seed", type=int, default=0, help="demo data seed")
    ev.set_defaults(func=_cmd_evaluate)

    parts = sub.add_parser("participants", help="manage the study's participants")
    parts_sub = parts.add_subparsers(dest="action", required=True)
    rm = parts_sub.add_parser("remove", help="remove (withdraw) a participant: partition deleted, stored assets "
                                             "archived, audited; retrained without them")
    rm.add_argument("participant")
    rm.add_argument("--reason", required=True, help="why, for the audit record (e.g. 'withdrew consent')")
    rm.add_argument("--home", help=HOME_HELP)
    rm.set_defaults(func=_cmd_participants_remove)
    rs = parts_sub.add_parser("restore", help="undo a removal: archived assets back, partition registered again")
    rs.add_argument("participant")
    rs.add_argument("--home", help=HOME_HELP)
    rs.set_defaults(func=_cmd_participants_restore)
    pg = parts_sub.add_parser("purge", help="make a removal final: delete every copy the platform holds of a "
                                            "removed participant (archive, event log, pictures, MLflow)")
    pg.add_argument("participant")
    pg.add_argument("--yes", action="store_true", help="confirm: this cannot be undone")
    pg.add_argument("--home", help=HOME_HELP)
    pg.set_defaults(func=_cmd_participants_purge)

    labels = sub.add_parser("labels", help="ask for the labels that would help most")
    labels_sub = labels.add_subparsers(dest="action", required=True)
    rq = labels_sub.add_parser("request", help="write the few spans of a participant's recording whose labels would "
                                               "help the model most to $HAR_HOME/label_requests/ID.csv")
    rq.add_argument("participant")
    rq.add_argument("--minutes", type=float, default=DEFAULT_MINUTES,
                    help=f"minutes of recording to ask for (default {DEFAULT_MINUTES:g})")
    rq.add_argument("--home", help=HOME_HELP)
    rq.set_defaults(func=_cmd_labels_request)

    preds = sub.add_parser("predictions", help="a participant's predictions as a file")
    preds_sub = preds.add_subparsers(dest="action", required=True)
    ex = preds_sub.add_parser("export", help="one row per window: start, end (ISO-8601 UTC), segment, activity, "
                                             "calibrated probability of every class, OOD score")
    ex.add_argument("participant")
    ex.add_argument("--format", choices=["csv", "parquet"], default="csv")
    ex.add_argument("--out", help="file to write (default $HAR_HOME/exports/ID.csv or .parquet)")
    ex.add_argument("--home", help=HOME_HELP)
    ex.set_defaults(func=_cmd_predictions_export)

    srv = sub.add_parser("serve", help="run the inference API (FastAPI on uvicorn) for the registered model")
    srv.add_argument("--home", help=HOME_HELP)
    srv.add_argument("--host", default="127.0.0.1")
    srv.add_argument("--port", type=int, default=8000)
    srv.add_argument("--workers", type=int, default=1)
    srv.add_argument("--tracking-uri", help="MLflow URI (default $MLFLOW_TRACKING_URI or the home's local store)")
    srv.add_argument("--model-name", help="registered model (default $HAR_MODEL_NAME or har-activity)")
    srv.add_argument("--alias", help="alias to follow (default $HAR_MODEL_ALIAS or champion)")
    srv.add_argument("--version", help="serve this version instead of following the alias")
    srv.add_argument("--poll-seconds", type=float, help="check the alias this often (default 30; 0: never)")
    srv.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"],
                     help="uvicorn log level (warning: no access log)")
    srv.set_defaults(func=_cmd_serve)

    mls = sub.add_parser("mlflow-server", help="MLflow's tracking server with authentication (basic-auth app), "
                                               "configured from the environment; the rest goes to mlflow server")
    mls.set_defaults(func=_cmd_mlflow_server, passes_on_arguments=True)  # e.g. --host 0.0.0.0 --port 5000

    dmn = sub.add_parser("daemon", help="dagster-daemon run under a watchdog that stops it when its heartbeats "
                                        "stop (its supervisor then restarts it); the rest goes to dagster-daemon run")
    dmn.set_defaults(func=_cmd_daemon, passes_on_arguments=True)  # e.g. -w workspace.yaml
    return parser


def main(argv: list[str] | None = None) -> int:
    warnings.filterwarnings("ignore", message="Parameter `data_version`")  # Dagster marks it beta
    # no MLflow download progress bars in summaries and run logs (`har dev`'s run workers inherit it)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    if rest and not getattr(args, "passes_on_arguments", False):
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    args.server_args = rest
    try:
        return args.func(args)
    except (HomeConfigError, RawRootUnavailable, RemovalStateError, HomeBusy, MlflowStoreError) as exc:
        print(f"har {args.command}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
