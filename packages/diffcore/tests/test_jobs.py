"""The job runner: job files, items, atomic records, resuming, failures, --fail-fast, --job."""

from __future__ import annotations

import io
import json
import os
import threading

import click
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from rich.console import Console

from diffcore.cli import cli
from diffcore.errors import DiffcoreError
from diffcore.jobs import JOB_DIR, TASKS, Item, JobFolder, Ranks, Task, collect_items, find_task, job_option, load_job, parse_job, run_job
from diffcore.jobs.records import TMP_SUFFIX, temp_path
from diffcore.jobs.runner import item_settings, job_meta
from diffcore.plugin_host import reset

torch.set_num_threads(1)
TWO_MODES = "gmm:means=[[-4.0,0.0],[4.0,0.0]]"


@pytest.fixture(autouse=True)
def builtin_plugin_only(monkeypatch):
    monkeypatch.setenv("DIFFCORE_PLUGINS", "")
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    reset()
    yield
    reset()


class Echo:
    """A cheap task that counts its calls: writes the item's key and seed, fails on request."""

    def __init__(self, fail=(), suffixes=(".txt",)):
        self.calls, self.fail, self.suffixes = [], set(fail), suffixes

    def factory(self, greeting: str = "hello", fail: list | None = None):
        fail = set(fail or ()) | self.fail

        def run(item: Item):
            self.calls.append(item.key)
            if item.key in fail:
                raise ValueError(f"cannot do {item.key}")
            text = f"{greeting} {item.key} {item.seed} {item.fields}\n".encode()
            if item.path is not None:
                text += item.path.read_bytes()
            return {s: text for s in self.suffixes}

        return run

    def task(self) -> Task:
        return Task("echo", self.factory)


def spec(tmp_path, items=None, **extra):
    data = {"task": "echo", "out": "out", "items": items or {"seeds": 10}, **extra}
    return parse_job(data, tmp_path)


def outputs(folder) -> dict[str, bytes]:
    """Every file under ``folder`` except the job's own bookkeeping, by relative path."""
    found = {}
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = [d for d in dirnames if d != JOB_DIR]
        for name in filenames:
            p = os.path.join(dirpath, name)
            found[os.path.relpath(p, folder)] = open(p, "rb").read()
    return found


# -- job files -----------------------------------------------------------------------------------
def write_job(tmp_path, text: str):
    path = tmp_path / "job.toml"
    path.write_text(text)
    return path


def test_job_file_is_parsed_with_paths_relative_to_it(tmp_path):
    path = write_job(
        tmp_path, 'task = "sample"\nout = "o"\nseed = 3\n[items]\nfolder = "in"\nsuffixes = [".png"]\n[options]\nprior = "x"\n'
    )
    job = load_job(path)
    assert (job.task, job.out, job.seed, job.options) == ("sample", tmp_path / "o", 3, {"prior": "x"})
    assert job.items == {"folder": str(tmp_path / "in"), "suffixes": [".png"]}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('task = "sample"\nout = "o"\nworkers = 2\n[items]\nseeds = 3\n', "unknown key(s) 'workers'"),
        (
            'task = "sample"\nout = "o"\n[items]\nseeds = 3\nfolders = "x"\n',
            "[items]: unknown key(s) 'folders'; allowed: seeds, folder, glob, manifest, suffixes, recursive (did you mean 'folder'?)",
        ),
        (
            'task = "sample"\nout = "o"\n[items]\nseeds = 3\nfolder = "x"\n',
            "needs exactly one of seeds, folder, glob, manifest; got seeds, folder",
        ),
        ('task = "sample"\n[items]\nseeds = 3\n', "'out' (the output folder) is missing"),
        ('task = "sample"\nout = "o"\n', "the [items] table is missing"),
        ('task = "sample"\nout = "o"\nseed = true\n[items]\nseeds = 3\n', "'seed' must be int, got bool True"),
        ('task = "sample"\nout = "o"\n[items]\nseeds = "3"\n', "seeds (a count or a list of seeds) must be int"),
        ('task = "sample"\nout = "o"\n[items]\nseeds = 3\nrecursive = true\n', "recursive applies to 'folder' only"),
        ("task = \n", "is not valid TOML"),
    ],
)
def test_bad_job_files_fail_with_a_clear_error(tmp_path, text, message):
    with pytest.raises(DiffcoreError) as info:
        load_job(write_job(tmp_path, text))
    assert message in str(info.value)


def test_bad_job_file_fails_on_the_command_line_before_any_work(tmp_path):
    path = write_job(tmp_path, f'task = "sample"\nout = "o"\nworkers = 2\n[items]\nseeds = 3\n[options]\nprior = "{TWO_MODES}"\n')
    result = CliRunner().invoke(cli, ["run", str(path)])
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [
        f"error: job file {str(path)!r}: unknown key(s) 'workers'; allowed: task, out, seed, items, options"
    ]
    assert not (tmp_path / "o").exists()


def test_unknown_task_option_fails_before_any_work(tmp_path):
    path = write_job(tmp_path, f'task = "sample"\nout = "o"\n[items]\nseeds = 3\n[options]\nprior = "{TWO_MODES}"\nstep = 5\n')
    result = CliRunner().invoke(cli, ["run", str(path)])
    assert result.exit_code == 2
    assert "bad [options] for task 'sample'" in result.stderr and "(did you mean 'steps'?)" in result.stderr
    assert not (tmp_path / "o").exists()


def test_unknown_task_names_the_known_ones(tmp_path):
    path = write_job(tmp_path, 'task = "sampel"\nout = "o"\n[items]\nseeds = 3\n')
    result = CliRunner().invoke(cli, ["run", str(path)])
    assert result.exit_code == 2
    assert "error: unknown task 'sampel'; known tasks: sample. Did you mean 'sample'?" in result.stderr


# -- items ---------------------------------------------------------------------------------------
def test_folder_glob_and_seed_items(tmp_path):
    (tmp_path / "in" / "sub").mkdir(parents=True)
    for name in ("b.png", "a.png", "c.txt", ".hidden.png", "sub/d.png"):
        (tmp_path / "in" / name).write_bytes(name.encode())
    flat = collect_items({"folder": str(tmp_path / "in"), "suffixes": ["png"]})
    assert [(i.key, i.path.name) for i in flat] == [("a", "a.png"), ("b", "b.png")]
    deep = collect_items({"folder": str(tmp_path / "in"), "suffixes": [".png"], "recursive": True})
    assert [i.key for i in deep] == ["a", "b", "sub/d"]
    globbed = collect_items({"glob": str(tmp_path / "in" / "**" / "*.png")})
    assert [i.key for i in globbed] == ["a", "b", "sub/d"]
    assert [i.seed for i in globbed] == [i.seed for i in deep]  # seeds depend on the key only
    assert collect_items({"seeds": [7, 3]}) == [Item("seed-000003", 3), Item("seed-000007", 7)]


def test_same_key_twice_is_refused(tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.png").write_bytes(b"1")
    (tmp_path / "in" / "a.jpg").write_bytes(b"2")
    with pytest.raises(DiffcoreError, match="two items share the key 'a'"):
        collect_items({"folder": str(tmp_path / "in")})


def test_manifests_csv_and_jsonl(tmp_path):
    (tmp_path / "x.png").write_bytes(b"x")
    (tmp_path / "m.csv").write_text("path,seed,prompt\nx.png,5,a cat\n,,\n".replace(",,\n", ""))
    (tmp_path / "m.jsonl").write_text('{"key": "p1", "prompt": "a dog"}\n\n{"path": "x.png"}\n')
    [row] = collect_items({"manifest": str(tmp_path / "m.csv")})
    assert (row.key, row.seed, row.path, row.fields) == ("x", 5, tmp_path / "x.png", {"prompt": "a cat"})
    rows = collect_items({"manifest": str(tmp_path / "m.jsonl")})
    assert [(r.key, r.fields) for r in rows] == [("p1", {"prompt": "a dog"}), ("x", {})]


def test_manifest_naming_missing_files_fails_before_any_work(tmp_path):
    (tmp_path / "there.png").write_bytes(b"x")
    (tmp_path / "m.csv").write_text("path\nthere.png\ngone.png\nlost/too.png\n")
    echo = Echo()
    with pytest.raises(DiffcoreError) as info:
        run_job(spec(tmp_path, {"manifest": "m.csv"}), echo.task())
    assert "names 2 file(s) that do not exist: 'gone.png', 'lost/too.png'" in str(info.value)
    assert echo.calls == [] and not (tmp_path / "out").exists()


# -- atomic records and resuming -----------------------------------------------------------------
def test_outputs_and_records(tmp_path):
    echo = Echo(suffixes=(".txt", ".meta"))
    summary = run_job(spec(tmp_path, {"seeds": 3}), echo.task())
    assert (summary.done, summary.skipped, summary.failed, summary.exit_code) == (3, 0, 0, 0)
    assert sorted(outputs(tmp_path / "out")) == [f"seed-00000{i}{s}" for i in range(3) for s in (".meta", ".txt")]
    record = json.loads((tmp_path / "out" / JOB_DIR / "records" / "seed-000001.json").read_text())
    assert sorted(record["outputs"]) == ["seed-000001.meta", "seed-000001.txt"]
    assert record["outputs"]["seed-000001.txt"]["bytes"] == len((tmp_path / "out" / "seed-000001.txt").read_bytes())
    owner = json.loads((tmp_path / "out" / JOB_DIR / "job.json").read_text())
    assert (owner["task"], owner["options"]) == ("echo", {})


def test_resume_runs_only_unfinished_items(tmp_path):
    echo = Echo()
    job = spec(tmp_path, {"seeds": 12})
    run_job(job, echo.task())
    reference = outputs(tmp_path / "out")
    out = tmp_path / "out"
    records = out / JOB_DIR / "records"
    (out / "seed-000001.txt").unlink()  # record without output
    (records / "seed-000002.json").unlink()  # output without record
    (out / "seed-000003.txt").write_bytes(b"torn")  # output with other bytes than its record
    (records / "seed-000004.json").write_text("{not json")  # torn record
    (out / "seed-000005.txt").write_bytes(b"")  # empty output
    temp_path(out / "seed-000006.txt").write_bytes(b"half")  # a killed write left its temp file
    echo.calls.clear()
    summary = run_job(job, echo.task())
    assert sorted(echo.calls) == [f"seed-00000{i}" for i in (1, 2, 3, 4, 5)]
    assert (summary.done, summary.skipped) == (5, 7)
    assert outputs(out) == reference
    assert not [p for p in out.rglob("*") if p.name.endswith(TMP_SUFFIX)]
    echo.calls.clear()
    assert run_job(job, echo.task()).skipped == 12 and echo.calls == []


def test_changed_input_file_is_redone(tmp_path):
    (tmp_path / "in").mkdir()
    for name in "abc":
        (tmp_path / "in" / f"{name}.dat").write_bytes(name.encode())
    echo = Echo()
    job = spec(tmp_path, {"folder": "in"})
    run_job(job, echo.task())
    (tmp_path / "in" / "b.dat").write_bytes(b"changed")
    echo.calls.clear()
    run_job(job, echo.task())
    assert echo.calls == ["b"]
    assert (tmp_path / "out" / "b.txt").read_bytes().endswith(b"changed")


def test_folder_of_another_job_is_refused_unless_forced(tmp_path):
    echo = Echo()
    run_job(spec(tmp_path, {"seeds": 3}), echo.task())
    other = spec(tmp_path, {"seeds": 3}, options={"greeting": "bye"})
    echo.calls.clear()
    with pytest.raises(DiffcoreError) as info:
        run_job(other, echo.task())
    assert "holds the records of another job (task 'echo', options {}); this job is task 'echo', options {\"greeting\": \"bye\"}" in str(
        info.value
    )
    assert "pass --force" in str(info.value) and echo.calls == []
    summary = run_job(other, echo.task(), force=True)
    assert summary.done == 3 and (tmp_path / "out" / "seed-000000.txt").read_bytes().startswith(b"bye")
    assert run_job(other, echo.task()).skipped == 3  # the folder is now this job's


def test_another_jobs_folder_is_refused_on_the_command_line(tmp_path):
    def job(steps):
        return write_job(
            tmp_path, f'task = "sample"\nout = "o"\n[items]\nseeds = 2\n[options]\nprior = "{TWO_MODES}"\nn = 4\nsteps = {steps}\n'
        )

    assert CliRunner().invoke(cli, ["run", str(job(3))]).exit_code == 0
    before = outputs(tmp_path / "o")
    result = CliRunner().invoke(cli, ["run", str(job(4))])
    assert result.exit_code == 2 and "holds the records of another job" in result.stderr
    assert outputs(tmp_path / "o") == before
    result = CliRunner().invoke(cli, ["run", str(job(4)), "--force"])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("2 items: 2 done, 0 skipped, 0 failed")
    assert outputs(tmp_path / "o") != before


# -- failures ------------------------------------------------------------------------------------
def test_failing_items_are_recorded_and_the_job_goes_on(tmp_path):
    echo = Echo(fail={"seed-000002", "seed-000005"})
    job = spec(tmp_path, {"seeds": 8})
    summary = run_job(job, echo.task())
    assert (summary.done, summary.failed, summary.exit_code) == (6, 2, 1)
    assert summary.failures == [("seed-000002", "ValueError: cannot do seed-000002"), ("seed-000005", "ValueError: cannot do seed-000005")]
    assert len(echo.calls) == 8
    failure = json.loads((tmp_path / "out" / JOB_DIR / "failed" / "seed-000002.json").read_text())
    assert failure["error"] == "ValueError: cannot do seed-000002" and "Traceback" in failure["traceback"]
    assert not (tmp_path / "out" / "seed-000002.txt").exists()
    # fixed: the next run does only the failed items and forgets their failures
    echo.fail.clear()
    echo.calls.clear()
    summary = run_job(job, echo.task())
    assert echo.calls == ["seed-000002", "seed-000005"] and (summary.done, summary.skipped, summary.exit_code) == (2, 6, 0)
    assert list((tmp_path / "out" / JOB_DIR / "failed").iterdir()) == []


def test_an_output_that_cannot_be_written_is_a_failed_item(tmp_path):
    (tmp_path / "out" / "seed-000001.txt").mkdir(parents=True)  # a folder where the output should go
    summary = run_job(spec(tmp_path, {"seeds": 4}), Echo().task())
    assert (summary.done, summary.failed) == (3, 1)
    assert summary.failures[0][0] == "seed-000001" and summary.failures[0][1].startswith("IsADirectoryError")
    assert not (tmp_path / "out" / JOB_DIR / "records" / "seed-000001.json").exists()
    assert not [p for p in (tmp_path / "out").rglob("*") if p.name.endswith(TMP_SUFFIX)]


def test_a_task_returning_the_wrong_type_is_a_failed_item(tmp_path):
    summary = run_job(spec(tmp_path, {"seeds": 2}), Task("echo", lambda: lambda item: b"bytes, not a dict"))
    assert summary.failed == 2 and "a task must return a non-empty dict {suffix: bytes}, got bytes" in summary.failures[0][1]


def test_fail_fast_stops_at_the_first_failure(tmp_path):
    echo = Echo(fail={"seed-000003"})
    summary = run_job(spec(tmp_path, {"seeds": 10}), echo.task(), fail_fast=True)
    assert echo.calls == ["seed-000000", "seed-000001", "seed-000002", "seed-000003"]
    assert (summary.done, summary.failed, summary.stopped, summary.not_run, summary.exit_code) == (3, 1, True, 6, 1)
    assert "stopped at the first failure, 6 not run" in summary.line()


def test_exit_codes_and_messages_on_the_command_line(tmp_path):
    path = write_job(
        tmp_path,
        f'task = "sample"\nout = "o"\n[items]\nseeds = 4\n[options]\nprior = "{TWO_MODES}"\nn = 2\nsteps = 2\nsampler = "ddim:eta=bad"\n',
    )
    result = CliRunner().invoke(cli, ["run", str(path)])
    assert result.exit_code == 1
    assert result.stdout.startswith("4 items: 0 done, 0 skipped, 4 failed")
    assert "failed: seed-000000: " in result.stderr and "error: 4 item(s) failed; their errors are in" in result.stderr
    result = CliRunner().invoke(cli, ["run", str(path), "--fail-fast"])
    assert result.exit_code == 1 and "1 failed" in result.stdout and "stopped at the first failure, 3 not run" in result.stdout


# -- the sample task -----------------------------------------------------------------------------
def test_sample_task_writes_the_samples_of_each_seed(tmp_path):
    job = parse_job(
        {"task": "sample", "out": "o", "items": {"seeds": [4, 9]}, "options": {"prior": TWO_MODES, "n": 8, "steps": 10}}, tmp_path
    )
    assert run_job(job, TASKS["sample"]).done == 2
    import diffcore

    prior = diffcore.create("prior", TWO_MODES)
    expected = diffcore.sample(prior, 8, steps=10, sampler="ddim", generator=torch.Generator().manual_seed(9))
    np.testing.assert_array_equal(np.load(tmp_path / "o" / "seed-000009.npy"), expected.numpy())


def test_sample_task_rejects_bad_options_before_any_work(tmp_path):
    for options, message in [
        ({"prior": TWO_MODES, "format": "jpg"}, "format must be one of npy, safetensors, png"),
        ({"prior": TWO_MODES, "format": "png"}, "format 'png' takes image priors"),
        ({"prior": "gmn"}, "unknown prior 'gmn'"),
        ({"prior": TWO_MODES, "sampler": "dddim"}, "unknown sampler 'dddim'"),
        ({"prior": TWO_MODES, "n": 0}, "n and steps must be positive integers"),
        ({}, "missing a required argument: 'prior'"),
    ]:
        with pytest.raises(DiffcoreError, match=None) as info:
            run_job(parse_job({"out": "o", "items": {"seeds": 2}, "options": options}, tmp_path), TASKS["sample"])
        assert message in str(info.value)
        assert not (tmp_path / "o").exists()


# -- progress and sharding -----------------------------------------------------------------------
def test_progress_bar_and_summary(tmp_path):
    buf = io.StringIO()
    console = Console(file=buf, force_terminal=True, width=120)
    summary = run_job(spec(tmp_path, {"seeds": 7}), Echo(fail={"seed-000001"}).task(), progress=True, console=console)
    text = buf.getvalue()
    assert "7/7" in text and "items/s" in text and "ETA" in text and "1 failed" in text
    assert summary.line().startswith("7 items: 6 done, 0 skipped, 1 failed in ")


def test_two_ranks_split_the_items_and_both_report_the_whole_job(tmp_path):
    """Two ranks as two threads with a shared barrier: each does its share, both sum the job."""
    job = spec(tmp_path, {"seeds": 9})
    echoes, summaries, barrier = [Echo(fail={"seed-000005"}), Echo(fail={"seed-000005"})], [None, None], threading.Barrier(2)

    def rank(r):
        summaries[r] = run_job(job, echoes[r].task(), ranks=Ranks(r, 2, barrier.wait))

    threads = [threading.Thread(target=rank, args=(r,)) for r in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert echoes[0].calls == [f"seed-00000{i}" for i in (0, 2, 4, 6, 8)]
    assert echoes[1].calls == [f"seed-00000{i}" for i in (1, 3, 5, 7)]
    for s in summaries:
        assert (s.total, s.done, s.failed, s.exit_code) == (9, 8, 1, 1)
        assert s.failures == [("seed-000005", "ValueError: cannot do seed-000005")]
    assert [s.main for s in summaries] == [True, False]
    records = {
        json.loads(p.read_text())["key"]: json.loads(p.read_text())["rank"] for p in (tmp_path / "out" / JOB_DIR / "records").glob("*.json")
    }
    assert records == {f"seed-00000{i}": i % 2 for i in range(9) if i != 5}
    run_job(parse_job({"task": "echo", "out": "one", "items": {"seeds": 9}}, tmp_path), Echo(fail={"seed-000005"}).task())
    assert outputs(tmp_path / "one") == outputs(tmp_path / "out")


def test_item_settings_depend_on_task_options_and_item(tmp_path):
    echo = Echo().task()
    a, b = job_meta(echo, {"greeting": "a"}), job_meta(echo, {"greeting": "b"})
    item = Item("k", 1)
    assert item_settings(a, item) == item_settings(job_meta(echo, {"greeting": "a"}), Item("k", 1))
    assert len({item_settings(a, item), item_settings(b, item), item_settings(a, Item("k", 2)), item_settings(a, Item("j", 1))}) == 4


def test_job_folder_finished_checks_bytes(tmp_path):
    folder = JobFolder(tmp_path)
    folder.write_item("a/b", "s1", {"a/b.txt": b"data"})
    assert folder.finished("a/b", "s1") and not folder.finished("a/b", "s2") and not folder.finished("c", "s1")
    (tmp_path / "a" / "b.txt").write_bytes(b"dat4")
    assert not folder.finished("a/b", "s1")


# -- --job on a plugin command -------------------------------------------------------------------
ECHO = Echo()


@job_option(ECHO.factory)
@click.command("echo")
@click.option("--text", required=True)
def echo_command(text):
    """Echo TEXT, or run an echo job."""
    click.echo(text)


def test_job_option_runs_a_job_through_a_command(tmp_path):
    runner = CliRunner()
    assert runner.invoke(echo_command, ["--text", "hi"]).output == "hi\n"
    missing = runner.invoke(echo_command, [])
    assert missing.exit_code == 2 and "Missing option '--text'" in missing.output
    path = write_job(tmp_path, 'out = "o"\n[items]\nseeds = 3\n[options]\ngreeting = "hey"\n')
    ECHO.calls.clear()
    result = runner.invoke(echo_command, ["--job", str(path)])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("3 items: 3 done") and len(ECHO.calls) == 3
    assert (tmp_path / "o" / "seed-000002.txt").read_bytes().startswith(b"hey seed-000002")
    both = runner.invoke(echo_command, ["--job", str(path), "--text", "hi"])
    assert both.exit_code == 2 and "do not also pass --text" in both.output
    alone = runner.invoke(echo_command, ["--text", "hi", "--fail-fast"])
    assert alone.exit_code == 2 and "--fail-fast and --force go with --job" in alone.output


def test_run_finds_the_task_of_a_plugin_command(tmp_path):
    group = click.Group("diffcore")
    sub = click.Group("tools")
    sub.add_command(echo_command)
    group.add_command(sub)
    ctx = click.Context(group)
    task = find_task("tools echo", group, ctx)
    assert (task.name, task.factory, task.summary) == ("tools echo", ECHO.factory, "Echo TEXT, or run an echo job.")
    with pytest.raises(DiffcoreError, match=r"unknown task 'tools ech'; known tasks: sample, tools echo. Did you mean 'tools echo'\?"):
        find_task("tools ech", group, ctx)


def test_job_option_refuses_a_command_with_its_options():
    with pytest.raises(TypeError, match="already has option"):
        job_option(ECHO.factory)(click.Command("x", params=[click.Option(["--force"], is_flag=True)]))


def test_tour_section_resumes_and_matches(tmp_path):
    import csv
    import json

    from diffcore.tour import run_tour

    run_tour(tmp_path, only=["jobs"], quick=True)
    report = json.loads((tmp_path / "report.json").read_text())
    (section,) = report["sections"]
    assert section["status"] == "ok", section["error"]
    assert section["metrics"]["resumed outputs identical to an uninterrupted run"]["value"] == "yes"
    rows = list(csv.DictReader((tmp_path / "jobs" / "runs.csv").open()))
    assert [(r["done"], r["skipped"]) for r in rows] == [("4", "0"), ("8", "4"), ("0", "12"), ("12", "0")]
