"""``diffcore inverse solve``: files, metrics, determinism, and one-line errors with no partial output."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner

from diff_inverse import images
from diffcore.cli import cli

FOUR = {"restoration.png", "measurement.png", "input.png", "metrics.json"}
INPAINT = ["--prior", "zoo:digits", "--operator", "inpaint:box=(4,4,8,8)", "--solver", "ddnm", "--steps", "20"]


def _zoo_digits_ready() -> bool:
    try:
        import diffusers  # noqa: F401

        from diff_zoo.priors import is_trained, weights_folder
    except ImportError:
        return False
    return is_trained(weights_folder("digits"))


needs_digits = pytest.mark.skipif(not _zoo_digits_ready(), reason="needs diff-zoo with the shipped zoo:digits weights and diffusers")


def _solve(args, out):
    return CliRunner().invoke(cli, ["inverse", "solve", *args, "--out", str(out)])


def _read_png(path, channels=1):
    return images.read_image(path, (channels, 16, 16))


@pytest.fixture(scope="module")
def inpainted(tmp_path_factory):
    """Two runs with seed 0 and one with seed 1 of box inpainting on the embedded test digit."""
    root = tmp_path_factory.mktemp("solve")
    runs = {}
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        res = _solve([*INPAINT, "--seed", str(seed)], root / name)
        assert res.exit_code == 0, res.output
        runs[name] = root / name
    return root, runs


@needs_digits
def test_writes_the_four_files_and_beats_the_pseudo_inverse(inpainted):
    root, runs = inpainted
    out = runs["a"]
    assert {p.name for p in out.iterdir()} == FOUR
    assert sorted(p.name for p in root.iterdir()) == ["a", "b", "c"]  # no temporary folder left behind
    metrics = json.loads((out / "metrics.json").read_text())
    rest, pinv = metrics["restoration"], metrics["pinv"]
    assert rest["psnr"] > pinv["psnr"] + 3.0, metrics  # the prior fills the 8x8 hole far better than zeros
    assert rest["ssim"] > pinv["ssim"], metrics
    assert metrics["settings"]["solver"] == "ddnm" and metrics["settings"]["steps"] == 20 and metrics["settings"]["seed"] == 0
    assert metrics["settings"]["x_shape"] == [1, 16, 16] and metrics["settings"]["y_shape"] == [1, 16, 16]
    assert metrics["seconds"]["solve"] > 0 and metrics["seconds"]["total"] >= metrics["seconds"]["solve"]

    # input.png is the held-out test digit, pixel for pixel; the measurement is it with the box zeroed
    from diff_zoo import data

    digit = data.digits().test.images([0])[0]
    x = _read_png(out / "input.png")
    assert torch.equal(x, digit)
    y = _read_png(out / "measurement.png")
    assert (y[:, 4:12, 4:12].abs() <= 1 / 127.5).all()  # 0 is written as code 127 or 128
    outside = torch.ones(16, 16, dtype=torch.bool)
    outside[4:12, 4:12] = False
    assert torch.equal(y[:, outside], digit[:, outside])
    # the reported PSNR is the PSNR of the written restoration (up to 8-bit rounding)
    assert abs(images.psnr(_read_png(out / "restoration.png"), digit) - rest["psnr"]) < 0.3


@needs_digits
def test_same_seed_gives_same_bytes(inpainted):
    _, runs = inpainted
    a, b, c = runs["a"], runs["b"], runs["c"]
    for name in ("restoration.png", "measurement.png", "input.png"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    ma, mb = (json.loads((d / "metrics.json").read_text()) for d in (a, b))
    ma.pop("seconds"), mb.pop("seconds")
    assert ma == mb
    assert (a / "restoration.png").read_bytes() != (c / "restoration.png").read_bytes()  # another seed, another sample


@needs_digits
def test_input_file_resize_and_non_image_measurement(inpainted, tmp_path):
    _, runs = inpainted
    from PIL import Image

    Image.open(runs["a"] / "input.png").convert("RGB").resize((20, 20)).save(tmp_path / "digit.jpg")
    args = [
        "--prior",
        "zoo:digits",
        "--operator",
        "sr:factor=4",
        "--solver",
        "ddrm",
        "--steps",
        "5",
        "--input",
        str(tmp_path / "digit.jpg"),
    ]
    res = _solve(args, tmp_path / "no")
    assert res.exit_code == 2 and "16x16" in res.stderr and "--resize" in res.stderr
    assert not (tmp_path / "no").exists()
    res = _solve([*args, "--resize", "--sigma-y", "0.05"], tmp_path / "sr")
    assert res.exit_code == 0, res.output
    metrics = json.loads((tmp_path / "sr" / "metrics.json").read_text())
    assert metrics["settings"]["sigma_y"] == 0.05 and metrics["settings"]["y_shape"] == [1, 4, 4]
    assert metrics["settings"]["input"].endswith("digit.jpg")

    # compressed sensing: y is a vector, so the pseudo-inverse image stands in for the measurement
    res = _solve(["--prior", "zoo:digits", "--operator", "cs:ratio=0.25", "--solver", "ddrm", "--steps", "3"], tmp_path / "cs")
    assert res.exit_code == 0, res.output
    assert {p.name for p in (tmp_path / "cs").iterdir()} == {"restoration.png", "measurement_pinv.png", "input.png", "metrics.json"}


def _bad_files(tmp_path):
    from PIL import Image

    (tmp_path / "text.png").write_text("not an image")
    Image.new("L", (20, 20), 128).save(tmp_path / "big.png")
    Image.new("L", (8, 8), 255).save(tmp_path / "mask8.png")


BAD = [
    ("sigma", ["--operator", "sr:factor=4", "--sigma-y", "-0.1"], "sigma-y"),
    ("unreadable", ["--operator", "sr:factor=4", "--input", "{tmp}/text.png"], "cannot read image"),
    ("missing", ["--operator", "sr:factor=4", "--input", "{tmp}/none.png"], "cannot read image"),
    ("size", ["--operator", "sr:factor=4", "--input", "{tmp}/big.png"], "16x16"),
    ("mask", ["--operator", "inpaint:mask='{tmp}/mask8.png'"], "(16, 16)"),
    ("no-svd", ["--operator", "ct", "--solver", "ddrm"], "Solvers that fit it"),
    (
        "nonlinear",
        ["--operator", "jpeg", "--solver", "ddnm"],
        "Solvers that fit it: daps, dps, red-diff",
    ),  # through JPEG's straight-through gradient
    ("no gradient", ["--operator", "jpeg:gradient='none'", "--solver", "dps"], "No registered solver fits it yet"),
    ("solver", ["--operator", "sr:factor=4", "--solver", "nosuch"], "unknown solver"),
    ("operator", ["--operator", "nosuch"], "unknown operator"),
    ("option", ["--operator", "sr:factr=4"], "factr"),
]


@needs_digits
@pytest.mark.parametrize(("case", "args", "says"), BAD, ids=[b[0] for b in BAD])
def test_bad_input_is_one_line_exit_2_and_no_output(tmp_path, case, args, says):
    _bad_files(tmp_path)
    before = set(tmp_path.iterdir())
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    res = _solve(["--prior", "zoo:digits", "--steps", "3", *args], tmp_path / "out")
    assert res.exit_code == 2, res.output
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr
    assert says in lines[0]
    assert set(tmp_path.iterdir()) == before  # no DIR, no temporary folder


def test_unknown_prior_is_one_line_exit_2(tmp_path):
    res = _solve(["--prior", "zoo:nosuch", "--operator", "sr:factor=4"], tmp_path / "out")
    assert res.exit_code == 2 and res.stderr.startswith("error: ") and "prior" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_psnr_and_ssim():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(1, 16, 16, generator=g) * 2 - 1
    assert images.psnr(x, x) == float("inf")
    assert images.psnr(torch.zeros(1, 4, 4), torch.full((1, 4, 4), 0.2)) == pytest.approx(20.0)
    assert images.ssim(x, x) == pytest.approx(1.0)
    eps = torch.randn(x.shape, generator=g)
    a, b = images.ssim((x + 0.1 * eps).clamp(-1, 1), x), images.ssim((x + 0.3 * eps).clamp(-1, 1), x)
    assert 0 < b < a < 1  # more noise, less similar


def test_ssim_matches_scikit_image():
    metrics = pytest.importorskip("skimage.metrics")
    g = torch.Generator().manual_seed(1)
    for shape in ((1, 16, 16), (3, 24, 20)):
        ref = torch.rand(shape, generator=g) * 2 - 1
        x = (ref + 0.2 * torch.randn(shape, generator=g)).clamp(-1, 1)
        theirs = metrics.structural_similarity(
            x.double().numpy(),
            ref.double().numpy(),
            channel_axis=0,
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
            data_range=2.0,
        )
        assert images.ssim(x, ref) == pytest.approx(float(theirs), abs=1e-6)


def test_gradient_solver_refuses_a_non_differentiable_operator():
    import diffcore
    from diff_inverse import solve
    from diffcore.errors import DiffcoreError

    prior = diffcore.create("prior", "gaussian", mean=[0.0] * 64, shape=(1, 8, 8))
    op = diffcore.create("operator", "jpeg", x_shape=(1, 8, 8), quality=50, gradient="none")
    y = op.A(torch.zeros(1, 1, 8, 8))
    with pytest.raises(DiffcoreError, match="not differentiable"):
        solve(prior, op, y, solver="dps", steps=2)


@needs_digits
def test_device_and_dtype_options(tmp_path, monkeypatch):
    """--dtype runs the network in another precision (the result stays close); a device this machine lacks,
    or a dtype an exact prior cannot take, is a one-line error with nothing written."""
    monkeypatch.delenv("DIFFCORE_DEVICE", raising=False)
    full = _solve([*INPAINT, "--device", "cpu"], tmp_path / "f32")
    half = _solve([*INPAINT, "--dtype", "bfloat16"], tmp_path / "bf16")
    assert full.exit_code == 0 and half.exit_code == 0, full.output + half.output
    a, b = (json.loads((tmp_path / k / "metrics.json").read_text())["restoration"]["psnr"] for k in ("f32", "bf16"))
    assert abs(a - b) < 3.0, (a, b)  # bf16 rounding shifts the sample a little, not the restoration
    if not torch.cuda.is_available():
        res = _solve([*INPAINT, "--device", "cuda"], tmp_path / "cuda")
        assert res.exit_code == 2 and "CUDA is not available" in res.output and len(res.output.strip().splitlines()) == 1
        assert not (tmp_path / "cuda").exists()
    monkeypatch.setenv("DIFFCORE_DEVICE", "tpu")
    res = _solve(INPAINT, tmp_path / "env")
    assert res.exit_code == 2 and "unknown device 'tpu'" in res.output and not (tmp_path / "env").exists()


@needs_digits
def test_out_is_replaced_whole_and_a_foreign_folder_is_refused(inpainted, tmp_path):
    """--out into an earlier result: the new result replaces it whole (an earlier run's files do not stay
    beside the new ones); a folder with other files is refused with nothing written."""
    _, runs = inpainted
    import shutil

    out = tmp_path / "out"
    shutil.copytree(runs["a"], out)
    (out / "measurement_pinv.png").write_bytes(b"from an earlier cs run")
    res = _solve([*INPAINT, "--seed", "1"], out)
    assert res.exit_code == 0, res.output
    assert {p.name for p in out.iterdir()} == FOUR  # the stale measurement_pinv.png is gone
    assert (out / "restoration.png").read_bytes() == (runs["c"] / "restoration.png").read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no temporary or old folder left behind
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    res = _solve(INPAINT, tmp_path / "mine")
    assert res.exit_code == 2 and "holds files that are not an earlier result (notes.txt)" in res.stderr
    assert [p.name for p in (tmp_path / "mine").iterdir()] == ["notes.txt"]


@needs_digits
def test_super_resolution_metrics_name_bicubic_and_lanczos(tmp_path):
    res = _solve(["--prior", "zoo:digits", "--operator", "sr:factor=2", "--solver", "ddrm", "--steps", "10"], tmp_path / "sr")
    assert res.exit_code == 0, res.output
    metrics = json.loads((tmp_path / "sr" / "metrics.json").read_text())
    assert set(metrics["baselines"]) == {"bicubic", "lanczos"} and metrics["pinv"] is not None
    truth = _read_png(tmp_path / "sr" / "input.png")
    y = images.read_image(tmp_path / "sr" / "measurement.png", (1, 8, 8))[None]
    from diff_inverse.baselines import upsample

    bicubic = upsample(y, (16, 16), "bicubic")[0]  # from the 8-bit measurement file: within rounding of the metric
    assert abs(images.psnr(bicubic, truth) - metrics["baselines"]["bicubic"]["psnr"]) < 0.3
    assert "bicubic PSNR" in res.output and "lanczos PSNR" in res.output


@needs_digits
def test_measurement_files_are_restored_as_given(tmp_path):
    """--measurement: y from a file (an image for image-shaped y, .npy or .safetensors otherwise); no ground
    truth, no scores; with --input it is scored. Inpainting takes its mask from --mask, and the file's values in
    the hole do not matter."""
    import numpy as np
    from PIL import Image
    from safetensors.torch import save_file

    import diffcore
    from diff_inverse import zoo

    digit = zoo.digits(1)[0]
    mask = torch.ones(16, 16)
    mask[4:12, 4:12] = 0
    Image.fromarray((mask * 255).to(torch.uint8).numpy()).save(tmp_path / "mask.png")
    holed = digit.clone()
    holed[:, 4:12, 4:12] = 1.0  # white paint in the hole: ignored
    (tmp_path / "holed.png").write_bytes(images.png(holed))

    args = ["--prior", "zoo:digits", "--operator", "inpaint", "--mask", str(tmp_path / "mask.png"), "--solver", "ddnm", "--steps", "10"]
    res = _solve([*args, "--measurement", str(tmp_path / "holed.png")], tmp_path / "given")
    assert res.exit_code == 0, res.output
    assert {p.name for p in (tmp_path / "given").iterdir()} == {"restoration.png", "measurement.png", "metrics.json"}
    metrics = json.loads((tmp_path / "given" / "metrics.json").read_text())
    assert metrics["restoration"] is None and metrics["pinv"] is None and metrics["settings"]["measurement"].endswith("holed.png")
    y = _read_png(tmp_path / "given" / "measurement.png")
    assert (y[:, 4:12, 4:12].abs() <= 1 / 127.5).all()  # the hole is zeroed, as the operator measures
    restored = _read_png(tmp_path / "given" / "restoration.png")
    outside = mask.bool()
    assert (restored[:, outside] - digit[:, outside]).abs().max() <= 1.5 / 127.5  # the observed pixels are kept
    assert "no ground truth" in res.output

    # the same with the ground truth: scored, and the same restoration as simulating that measurement
    res = _solve(
        [*args, "--measurement", str(tmp_path / "holed.png"), "--input", str(tmp_path / "given" / "measurement.png")], tmp_path / "scored"
    )
    assert res.exit_code == 0 and json.loads((tmp_path / "scored" / "metrics.json").read_text())["restoration"]["psnr"] > 0

    # a vector measurement (compressed sensing) from .npy and from .safetensors gives the same restoration
    op = diffcore.create("operator", "cs:ratio=0.25", x_shape=(1, 16, 16))
    vec = op.A(digit[None])[0]
    np.save(tmp_path / "y.npy", vec.numpy())
    save_file({"y": vec[None].contiguous()}, str(tmp_path / "y.safetensors"))
    cs = ["--prior", "zoo:digits", "--operator", "cs:ratio=0.25", "--solver", "ddrm", "--steps", "5"]
    a = _solve([*cs, "--measurement", str(tmp_path / "y.npy")], tmp_path / "npy")
    b = _solve([*cs, "--measurement", str(tmp_path / "y.safetensors")], tmp_path / "st")
    assert a.exit_code == 0 and b.exit_code == 0, a.output + b.output
    assert (tmp_path / "npy" / "restoration.png").read_bytes() == (tmp_path / "st" / "restoration.png").read_bytes()
    assert {p.name for p in (tmp_path / "npy").iterdir()} == {"restoration.png", "measurement_pinv.png", "metrics.json"}

    bad = [
        (["--measurement", str(tmp_path / "y.npy"), "--operator", "sr:factor=2"], "has shape (64,); the operator's y is (1, 8, 8)"),
        (
            ["--measurement", str(tmp_path / "holed.png"), "--operator", "cs:ratio=0.25"],
            "not an image: give the measurement as .npy or .safetensors",
        ),
        (
            ["--measurement", str(tmp_path / "holed.png"), "--operator", "sr:factor=2"],
            "is 16x16 (width x height) but the operator's y is 8x8",
        ),
        (["--operator", "sr:factor=2", "--mask", str(tmp_path / "mask.png")], "--mask goes with the inpainting operator"),
        (["--operator", "inpaint:box=(1,1,2,2)", "--mask", str(tmp_path / "mask.png")], "sets box too"),
    ]
    for extra, says in bad:
        res = _solve(["--prior", "zoo:digits", "--steps", "2", *extra], tmp_path / "bad")
        assert res.exit_code == 2 and says in res.stderr and len(res.stderr.strip().splitlines()) == 1, (extra, res.stderr)
        assert not (tmp_path / "bad").exists()


@needs_digits
def test_job_restores_a_folder_of_measurements(tmp_path):
    """--job: one restoration and one record per measurement file, each seeded by its item; a rerun skips them."""
    import diffcore
    from diff_inverse import zoo

    folder = tmp_path / "measured"
    folder.mkdir()
    op = diffcore.create("operator", "sr:factor=2", x_shape=(1, 16, 16))
    for i, digit in enumerate(zoo.digits(3)):
        (folder / f"d{i}.png").write_bytes(images.png(op.A(digit[None])[0]))
    job = tmp_path / "job.toml"
    job.write_text(
        'task = "inverse solve"\nout = "restored"\n[items]\nfolder = "measured"\n[options]\nprior = "zoo:digits"\noperator = '
        '"sr:factor=2"\nsolver = "ddrm"\nsteps = 5\n'
    )
    res = CliRunner().invoke(cli, ["inverse", "solve", "--job", str(job)])
    assert res.exit_code == 0, res.output
    out = tmp_path / "restored"
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == [f"d{i}{s}" for i in range(3) for s in (".json", ".png")]
    record = json.loads((out / "d1.json").read_text())
    assert record["measurement"] == "d1.png" and record["settings"]["solver"] == "ddrm" and record["settings"]["steps"] == 5
    restored = _read_png(out / "d1.png")
    assert images.psnr(restored, zoo.digits(2)[1]) > 20
    res = CliRunner().invoke(cli, ["run", str(job)])  # the same task through `diffcore run`, by its command path: all done already
    assert res.exit_code == 0 and "3" in res.output, res.output
