"""The audit end to end: a prior that memorised its data is caught; the command's files, job and errors."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner

from diff_safety.auditing import audit
from diff_safety.data import ImageData, save_images
from diff_safety.extraction import Criterion
from diff_safety.report import write_report
from diffcore.cli import cli
from diffcore.priors import GaussianMixturePrior


def _zoo_digits_ready() -> bool:
    try:
        from diff_zoo.priors import is_trained, weights_folder
    except ImportError:
        return False
    return is_trained(weights_folder("digits"))


needs_digits = pytest.mark.skipif(not _zoo_digits_ready(), reason="needs diff-zoo with the shipped zoo:digits weights")


def _memorising_prior(train, held_out_share=0):
    """A mixture with a narrow component on each training image: every generation is a copy."""
    return GaussianMixturePrior(
        train.reshape(len(train), -1), covs=torch.full((len(train), train[0].numel()), 0.02**2), shape=tuple(train.shape[1:])
    )


def test_a_memorising_prior_is_caught_and_reported(tmp_path):
    g = torch.Generator().manual_seed(0)
    train = (torch.rand(60, 1, 6, 6, generator=g) * 2 - 1) * 0.9
    held = (torch.rand(30, 1, 6, 6, generator=g) * 2 - 1) * 0.9
    prior = _memorising_prior(train)
    result = audit(
        prior,
        ImageData(train, names=[f"t{i}" for i in range(60)], source="train"),
        n=40,
        steps=20,
        batch=16,
        criterion=Criterion(grid=2, n=30),
        held_out=ImageData(held, source="held"),
        clique_k=3,
        work=tmp_path / "work",
    )
    s = result.summary()
    assert s["generations"] == 40 and s["extraction_rate"] == 1.0  # every generation copies a training image
    assert result.baseline["extracted_rate"] == 0.0  # and no held-out image is mistaken for a copy
    assert s["membership_auc"] == 1.0
    assert result.extractions.distance.max() < 0.1
    # a resumed audit reads the same generations back from the job folder
    again = audit(prior, ImageData(train), n=40, steps=20, batch=16, criterion=Criterion(grid=2, n=30), work=tmp_path / "work")
    assert torch.equal(again.generated, result.generated)
    # other settings in the same work folder: the audit takes it over and reads only its own items
    fewer = audit(prior, ImageData(train), n=16, steps=10, batch=16, criterion=Criterion(grid=2, n=30), work=tmp_path / "work")
    assert fewer.generated.shape[0] == 16 and not torch.equal(fewer.generated, result.generated[:16])
    index = write_report(result, tmp_path / "report")
    data = json.loads((tmp_path / "report" / "report.json").read_text())
    assert data["format"] == "diffcore-safety-audit" and len(data["extracted"]) == 40
    assert data["extracted"][0]["training_image"].startswith("t")
    assert len(list((tmp_path / "report" / "pairs").glob("*.png"))) == 40
    assert "Extracted generations (40" in index.read_text()


@pytest.fixture(scope="module")
def digits_files(tmp_path_factory):
    from diff_zoo import data

    root = tmp_path_factory.mktemp("digits")
    d = data.digits()
    save_images(root / "train.safetensors", d.train.images(), d.train.labels)
    save_images(root / "small.safetensors", torch.zeros(3, 1, 8, 8))
    return root


def _audit(*args):
    return CliRunner().invoke(cli, ["safety", "audit", *args])


@needs_digits
def test_audit_command_writes_a_report_and_nothing_else(tmp_path, digits_files):
    out = tmp_path / "out"
    res = _audit(
        "--prior",
        "zoo:digits",
        "--data",
        str(digits_files / "train.safetensors"),
        "--n",
        "20",
        "--steps",
        "4",
        "--batch",
        "10",
        "--label",
        "3,7",
        "--out",
        str(out),
    )
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # the partial folder was renamed into place
    report = json.loads((out / "report.json").read_text())
    assert report["summary"]["generations"] == 20 and {c["condition"] for c in report["cliques"]} == {"3", "7"}
    assert (out / "index.html").is_file() and len(list((out / "generations").glob("*.safetensors"))) == 2
    again = _audit(
        "--prior",
        "zoo:digits",
        "--data",
        str(digits_files / "train.safetensors"),
        "--n",
        "20",
        "--steps",
        "4",
        "--batch",
        "10",
        "--label",
        "3,7",
        "--out",
        str(out),
    )
    assert again.exit_code == 0, again.output  # an earlier audit is replaced


@needs_digits
def test_generation_job_then_audit_of_its_folder(tmp_path, digits_files):
    job = tmp_path / "job.toml"
    job.write_text(
        'task = "safety audit"\nout = "gens"\n[items]\nseeds = 2\n[options]\nprior = "zoo:digits"\nn = 5\nsteps = 3\nlabels = [1]\n'
    )
    res = CliRunner().invoke(cli, ["safety", "audit", "--job", str(job)])
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in (tmp_path / "gens").glob("*.safetensors")) == ["seed-000000.safetensors", "seed-000001.safetensors"]
    res = _audit(
        "--generations",
        str(tmp_path / "gens"),
        "--data",
        str(digits_files / "train.safetensors"),
        "--out",
        str(tmp_path / "rep"),
        "--clique-k",
        "3",
    )
    assert res.exit_code == 0, res.output
    report = json.loads((tmp_path / "rep" / "report.json").read_text())
    assert report["summary"]["generations"] == 10 and report["cliques"][0]["condition"] == "1"


@needs_digits
@pytest.mark.parametrize(
    "args, message",
    [
        (["--label", "12"], "label 12 is not a class of this prior; it has classes 0 to 9"),
        (["--prompt", "a cat"], "cannot be conditioned on prompts"),
        (["--data", "{root}/small.safetensors"], "images of 1x8x8 (C x H x W) but the prior makes 1x16x16"),
        (["--data", "{root}/empty"], "holds no image files"),
        (["--prior", "zoo:digitz"], "Did you mean 'zoo:digits'"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, digits_files, args, message):
    (digits_files / "empty").mkdir(exist_ok=True)
    base = {"--prior": "zoo:digits", "--data": str(digits_files / "train.safetensors")}
    extra = [a.format(root=digits_files) for a in args]
    for key in list(base):
        if key in extra:
            base.pop(key)
    flat = [x for kv in base.items() for x in kv]
    res = _audit(*flat, *extra, "--n", "4", "--out", str(tmp_path / "out"))
    assert res.exit_code == 2, res.output
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0], res.output
    assert list(tmp_path.iterdir()) == []
