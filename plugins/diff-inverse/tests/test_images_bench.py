"""``diff_inverse.bench.images`` and ``diffcore inverse bench images``: the table of PSNR and SSIM
of the solvers next to the pseudo-inverse, the document of one section per prior, one-line errors."""

from __future__ import annotations

import pytest
import torch
from click.testing import CliRunner

from diff_inverse.bench import images as bench
from diffcore.cli import cli

pytest.importorskip("diffusers")


def _zoo_digits_ready() -> bool:
    try:
        from diff_zoo.priors import is_trained, weights_folder
    except ImportError:
        return False
    return is_trained(weights_folder("digits"))


needs_digits = pytest.mark.skipif(not _zoo_digits_ready(), reason="needs diff-zoo with the shipped zoo:digits weights")


def _has_zoo() -> bool:
    try:
        import diff_zoo  # noqa: F401
    except ImportError:
        return False
    return True


needs_zoo = pytest.mark.skipif(not _has_zoo(), reason="needs diff-zoo (its data and recipes)")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """Tiny random diffusers UNets standing in for priors that are not trained here: 3x32x32 and 1x64x64."""
    from diffcore.testing import save_tiny_unet_pipeline

    root = tmp_path_factory.mktemp("tiny")
    return {
        "rgb32": save_tiny_unet_pipeline(root / "rgb32", sample_size=32, channels=3),
        "gray64": save_tiny_unet_pipeline(root / "gray64", sample_size=64, channels=1, block_out_channels=(8, 16)),
        "rgb8": save_tiny_unet_pipeline(root / "rgb8", sample_size=8, channels=3),
    }


@pytest.fixture(scope="module")
def digits_result():
    return bench.run("zoo:digits", operators=["sr-x2", "inpaint-box"], solvers=["ddrm", "dps"], steps=10, seed=0, n=2)


@needs_digits
def test_digits_table_and_ddrm_beats_the_pseudo_inverse_on_sr(digits_result):
    r = digits_result
    assert r.key == "zoo:digits" and r.n == 2 and r.shape == (1, 16, 16) and r.steps == 10
    assert [row.row.key for row in r.rows] == ["sr-x2", "inpaint-box"] and r.solvers == ["ddrm", "dps"]
    sr = r.rows[0]
    assert sr.row.spec == "sr:factor=2" and sr.row.sigma_y == 0.05
    for row in r.rows:
        assert row.pinv is not None and len(row.pinv.psnr) == 2
        for s in r.solvers:
            cell = row.cells[s]
            assert isinstance(cell, bench.Scores) and cell.finite and len(cell.psnr) == len(cell.ssim) == 2
            assert all(-1 <= v <= 1 for v in cell.ssim) and cell.seconds > 0
    # measured: DDRM 27.8 dB / SSIM 0.89 against the pseudo-inverse's 22.0 dB / 0.84 (10 steps, 2 digits)
    ddrm = sr.cells["ddrm"]
    assert ddrm.mean_psnr > sr.pinv.mean_psnr + 3.0, (ddrm.mean_psnr, sr.pinv.mean_psnr)
    assert ddrm.mean_ssim > sr.pinv.mean_ssim
    assert sr.beats("ddrm", "psnr") is True
    # super-resolution is also compared with bicubic and Lanczos upsampling of y; inpainting has the pseudo-inverse only
    assert set(sr.baselines) == {"pinv", "bicubic", "lanczos"} and set(r.rows[1].baselines) == {"pinv"}
    best = max(b.mean_psnr for b in sr.baselines.values())
    assert sr.best_baseline("psnr")[1] == best and sr.beats("ddrm", "psnr") == (round(ddrm.mean_psnr, 2) > round(best, 2))

    text = bench.markdown(r)
    assert text.startswith("## zoo:digits\n")
    assert "| operator | sigma_y | pseudo-inverse | bicubic | Lanczos | ddrm | dps |" in text
    assert "(`sr-x2`) | 0.05 |" in text and "(`inpaint-box`) | 0.05 |" in text
    assert "**Summary:** in 4 (operator, solver) pairs" in text
    for key, solver in r.losses("psnr"):  # every loss is marked in the table and listed under it
        assert f"{solver} on `{key}`" in text and bench.LOSS in text


@needs_digits
def test_mean_of_posterior_samples_is_scored_next_to_one_sample():
    """--samples K: one batched solve of K copies per image; the first sample and the mean of the K are scored."""
    # DDRM on the prior's own grid: its samples spread (snapped onto sigma_y they nearly coincide)
    r = bench.run("zoo:digits", operators=["denoise-0.2"], solvers=["ddrm:snap=false"], steps=10, seed=0, n=2, samples=6)
    row = r.rows[0]
    one, mean = row.cells["ddrm:snap=false"], row.means["ddrm:snap=false"]
    assert r.samples == 6 and len(one.psnr) == len(mean.psnr) == 2 and one.seconds == mean.seconds > 0
    # averaging posterior samples lowers the squared error (it estimates the posterior mean); averaging
    # over the wrong axis (across images) would not
    assert mean.mean_psnr > one.mean_psnr + 0.5, (mean.mean_psnr, one.mean_psnr)
    assert row.beats("ddrm:snap=false", "psnr", "mean") is True
    text = bench.markdown(r)
    assert "### PSNR (dB) of the mean of 6 posterior samples" in text and "with the mean of 6 samples, on PSNR in 1" in text
    assert "Seconds per batch of N images x 6 samples" in text
    with pytest.raises(bench.DiffcoreError, match="samples"):
        bench.run("zoo:digits", operators=["denoise"], solvers=["ddrm"], steps=2, n=1, samples=0)


@needs_zoo
def test_test_sets_of_the_zoo_priors():
    from diff_zoo import data

    digits = bench.default_test_set("zoo:digits", 3, (1, 16, 16))
    assert torch.equal(digits.images, data.digits().test.images(torch.arange(3)))
    phantoms = bench.default_test_set("zoo:phantoms", 3, (1, 64, 64))
    assert phantoms.images.shape == (3, 1, 64, 64) and phantoms.featured == 0 and phantoms.featured_name == "Shepp-Logan"
    assert torch.equal(phantoms.images[0], data.held_out_images("phantoms")["shepp_logan"].float())
    assert "Shepp-Logan" in phantoms.description
    with pytest.raises(bench.DiffcoreError, match="no default test set"):
        bench.default_test_set("gmm", 2, (1, 16, 16))
    assert [r.key for r in bench.operator_rows("zoo:phantoms", (1, 64, 64))][:2] == ["ct-30", "ct-30-noiseless"]
    assert "colorize" in [r.key for r in bench.operator_rows("zoo:patches", (3, 32, 32))]
    assert "colorize" not in [r.key for r in bench.operator_rows("zoo:digits", (1, 16, 16))]  # one channel


@needs_zoo
def test_untrained_zoo_prior_by_name_with_tiny_weights(tiny):
    """zoo:patches is not shipped yet: its default test set and rows work with any weights of its shape."""
    from diff_zoo import data

    spec = f"zoo:patches:path={str(tiny['rgb32'])!r}"
    r = bench.run(spec, operators=["sr-x4", "colorize"], solvers=["ddrm", "projection"], steps=2, n=2)
    assert r.key == "zoo:patches" and r.shape == (3, 32, 32) and "astronaut" in r.test_set
    assert r.prior == "zoo:patches:path=DIR"  # no local folder in the published page
    assert isinstance(r.rows[0].cells["ddrm"], bench.Scores) and r.rows[0].cells["projection"] == "assumes noiseless y"
    assert r.rows[0].beats("projection", "psnr") is None  # not run: not compared
    assert r.rows[1].row.spec == "colorize"
    text = bench.markdown(r)
    assert str(tiny["rgb32"]) not in text and "projection (assumes noiseless y): `sr-x4`, `colorize`" in text
    # the test crops are the patches data set's held-out ones
    assert torch.equal(bench.default_test_set(spec, 2, (3, 32, 32)).images, data.build("patches", n_train=1).test.images(torch.arange(2)))


@needs_zoo
def test_phantoms_ct_skips_what_does_not_fit(tiny):
    spec = f"zoo:phantoms:path={str(tiny['gray64'])!r}"
    r = bench.run(spec, operators=["ct-30", "ct-30-noiseless"], solvers=["ddrm", "pigdm"], steps=2, n=2)
    noisy, clean = r.rows
    assert noisy.cells["ddrm"] == clean.cells["ddrm"] == "needs an SVD"
    # pigdm declares that noisy y needs an SVD (needs_svd_when_noisy): not applicable, like ddrm, not a failure
    assert noisy.cells["pigdm"] == "needs an SVD for noisy y" and ("ct-30", "pigdm") not in r.losses("psnr")
    assert r.compared() == 1
    assert isinstance(clean.cells["pigdm"], bench.Scores) and clean.pinv is not None
    text = bench.markdown(r)
    assert "### PSNR (dB) on Shepp-Logan alone" in text
    assert "failed" not in text.split("### PSNR")[1]


def test_a_failure_or_a_non_finite_output_is_a_loss(monkeypatch, tiny):
    """An error raised during a solve and a non-finite output both count as losses in "beats the baseline in N of
    M": M keeps them, N does not. (The old bench recorded a failure as "not run" and scored NaNs as zeros.)"""
    import sys

    solve_module = sys.modules["diff_inverse.solve"]  # the module (the package exports its function under the same name)
    real = solve_module.solve

    def flaky(prior, operator, y, *, solver, **kw):
        if solver.name == "ddnm+":
            raise bench.DiffcoreError("the solver gave up")
        x = real(prior, operator, y, solver=solver, **kw)
        return x * float("nan") if solver.name == "red-diff" else x

    monkeypatch.setattr(solve_module, "solve", flaky)
    spec = f"diffusers:path={str(tiny['rgb8'])!r}"
    x = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(0)) * 2 - 1
    r = bench.run(spec, images=x, operators=["denoise"], solvers=["ddrm", "ddnm+", "red-diff"], steps=2)
    row = r.rows[0]
    assert row.cells["ddnm+"] == bench.FAILED + "the solver gave up" and row.beats("ddnm+", "psnr") is False
    assert not row.cells["red-diff"].finite and row.beats("red-diff", "psnr") is False and row.beats("red-diff", "ssim") is False
    assert r.compared() == 3 and {s for _, s in r.losses("psnr")} >= {"ddnm+", "red-diff"}
    text = bench.markdown(r)
    assert "non-finite output" in text and "Failed: ddnm+ on `denoise`: the solver gave up" in text


def test_any_image_prior_with_given_images(tiny):
    spec = f"diffusers:path={str(tiny['rgb8'])!r}"
    x = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(0)) * 2 - 1
    r = bench.run(spec, images=x, solvers=["ddnm+", "red-diff"], steps=2)
    assert [row.row.key for row in r.rows] == ["inpaint-box", "sr-x2", "deblur", "denoise", "colorize"]
    assert all(isinstance(c, bench.Scores) for row in r.rows for c in row.cells.values())
    # an operator spec measured with the given sigma_y unless the spec sets it
    r = bench.run(spec, images=x, operators=["sr:factor=4", "denoise:sigma_y=0.3"], solvers=["ddrm"], steps=2, sigma_y=0.1)
    assert [(row.row.key, row.row.sigma_y) for row in r.rows] == [("sr:factor=4", 0.1), ("denoise:sigma_y=0.3", 0.3)]
    with pytest.raises(bench.DiffcoreError, match="no default test set"):
        bench.run(spec, solvers=["ddrm"], steps=2)
    with pytest.raises(bench.DiffcoreError, match="unknown operator 'sr-x3'"):
        bench.run(spec, images=x, operators=["sr-x3"], solvers=["ddrm"], steps=2)
    with pytest.raises(bench.DiffcoreError, match="images must be"):
        bench.run(spec, images=x[:, :1], solvers=["ddrm"], steps=2)


def test_split_items():
    assert bench.split_items(["sr-x2,inpaint-box", "deblur"]) == ["sr-x2", "inpaint-box", "deblur"]
    assert bench.split_items(["inpaint:box=(4,4,8,8),sr:factor=2,mode='bicubic' cs"]) == [
        "inpaint:box=(4,4,8,8)",
        "sr:factor=2,mode='bicubic'",
        "cs",
    ]
    assert bench.split_items([]) == []


def _section_keys(text):
    return [line.split()[3] for line in text.splitlines() if line.startswith("<!-- bench-images begin")]


def test_document_replaces_its_section_and_keeps_the_others(tiny):
    x = torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(1)) * 2 - 1
    spec = f"diffusers:path={str(tiny['rgb8'])!r}"
    a = bench.run(spec, images=x, operators=["denoise"], solvers=["ddrm"], steps=2)
    b = bench.run(spec, images=x, operators=["sr-x2"], solvers=["ddrm"], steps=2)
    b.key = "other"
    text = bench.update_document(None, a)
    assert text.startswith(bench.TITLE) and _section_keys(text) == ["diffusers"]
    text = bench.update_document(text, b)
    assert _section_keys(text) == ["diffusers", "other"]
    a2 = bench.run(spec, images=x, operators=["deblur"], solvers=["ddrm"], steps=2)
    new = bench.update_document(text, a2)
    assert _section_keys(new) == ["diffusers", "other"] and "`deblur`" in new and "(`denoise`)" not in new
    assert new.split("<!-- bench-images begin other -->")[1] == text.split("<!-- bench-images begin other -->")[1]
    assert bench.update_document(new, a2) == new  # idempotent


def test_sections_follow_the_priors_and_the_intro_says_what_the_page_holds(tiny):
    import dataclasses

    x = torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(1)) * 2 - 1
    r = bench.run(f"diffusers:path={str(tiny['rgb8'])!r}", images=x, operators=["denoise"], solvers=["ddrm"], steps=2)
    rerun = "diffcore inverse bench images --prior zoo:phantoms --samples 2 --out docs/inverse-images.md"
    phantoms = dataclasses.replace(r, key="zoo:phantoms", command=rerun)
    text = bench.update_document(None, phantoms)
    text = bench.update_document(text, dataclasses.replace(r, key="check"))
    text = bench.update_document(text, dataclasses.replace(r, key="zoo:digits"))
    assert _section_keys(text) == ["zoo:digits", "zoo:phantoms", "check"]  # the order of bench.PRIORS, the check last
    head = text.split("<!-- bench-images begin")[0]
    assert "- `zoo:phantoms`: 1 images, 2 steps, one posterior sample per image" in head
    assert "- not on this page (not measured with the current code): `zoo:patches`, `zoo:textures`" in head
    commands = head.split("```bash\n")[1].split("```")[0].splitlines()
    assert commands[1:4] == [
        "diffcore inverse bench images --prior zoo:patches --samples 8 --out docs/inverse-images.md",  # the default, not measured
        "diffcore inverse bench images --prior zoo:textures --samples 8 --out docs/inverse-images.md",
        rerun,  # the section's own
    ]
    assert bench.regenerate(text) == text


def _bench(args, out):
    return CliRunner().invoke(cli, ["inverse", "bench", "images", *args, "--out", str(out)])


@needs_digits
def test_cli_writes_the_document_atomically(tmp_path, tiny):
    out = tmp_path / "doc.md"
    res = _bench(["--prior", "zoo:digits", "--operators", "sr-x2", "--solvers", "ddrm", "--steps", "5", "--n", "2"], out)
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["doc.md"]  # no temporary file left behind
    text = out.read_text()
    assert text.startswith(bench.TITLE) and _section_keys(text) == ["zoo:digits"]
    assert (
        "Rerun: `diffcore inverse bench images --prior zoo:digits --operators sr-x2 --sigma-y 0.05 --solvers ddrm --n 2 --steps 5" in text
    )
    assert str(tmp_path) not in text
    # a second prior adds its section; the first one is kept as it was
    spec = f"zoo:patches:path={str(tiny['rgb32'])!r}"
    res = _bench(["--prior", spec, "--operators", "sr-x4", "--solvers", "ddrm", "--steps", "2", "--n", "1"], out)
    assert res.exit_code == 0, res.output
    both = out.read_text()
    assert _section_keys(both) == ["zoo:digits", "zoo:patches"] and str(tiny["rgb32"]) not in both
    digits = "<!-- bench-images begin zoo:digits -->"
    assert both.split(digits)[1].split("<!-- bench-images end")[0] == text.split(digits)[1].split("<!-- bench-images end")[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["doc.md"]


BAD = [
    ("operator", ["--prior", "zoo:patches:path={rgb32}", "--operators", "sr-x2,nosuch"], "unknown operator 'nosuch'"),
    ("prior", ["--prior", "zoo:nosuch"], "prior"),
    ("solver", ["--prior", "zoo:patches:path={rgb32}", "--solvers", "ddrm,nosuch"], "unknown solver"),
    ("sigma", ["--prior", "zoo:patches:path={rgb32}", "--sigma-y", "-1"], "sigma-y"),
    ("option", ["--prior", "zoo:patches:path={rgb32}", "--operators", "sr:factr=2"], "factr"),
    ("no-test-set", ["--prior", "diffusers:path={rgb32}"], "no default test set"),
]


@needs_zoo
@pytest.mark.parametrize(("case", "args", "says"), BAD, ids=[b[0] for b in BAD])
def test_cli_bad_input_is_one_line_exit_2_and_leaves_the_document(tmp_path, tiny, case, args, says):
    out = tmp_path / "doc.md"
    out.write_text("kept\n")
    args = [a.replace("{rgb32}", repr(str(tiny["rgb32"]))) for a in args]
    res = _bench([*args, "--steps", "1", "--n", "1"], out)
    assert res.exit_code == 2, res.output
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr
    assert says in lines[0]
    assert out.read_text() == "kept\n" and sorted(p.name for p in tmp_path.iterdir()) == ["doc.md"]


PAGE = __import__("pathlib").Path(__file__).resolve().parents[3] / "docs" / "inverse-images.md"


@pytest.mark.skipif(not PAGE.is_file(), reason="docs/inverse-images.md is in the repository")
def test_the_published_page_is_what_the_code_makes_of_its_data():
    text = PAGE.read_text()
    assert bench.regenerate(text) == text
    results = bench.results_of(text)
    keys = [r.key for r in results]
    assert "zoo:digits" in keys and keys == [p for p in bench.PRIORS if p in keys] + ["check"]  # a missing prior is named in the intro
    for r in results[:-1]:  # every section has the default rows and columns of the code
        assert r.solvers == list(bench.DEFAULT_SOLVERS), r.key
        assert [row.row for row in r.rows] == list(bench.operator_rows(r.key, r.shape)), r.key


@needs_digits
@pytest.mark.skipif(not PAGE.is_file(), reason="docs/inverse-images.md is in the repository")
def test_the_check_section_is_repeated():
    """A fresh run of the check measurement gives the published check section's numbers (to 0.02 dB, 0.002 SSIM)."""
    published = bench.results_of(PAGE.read_text())[-1]
    fresh = bench.run_check()
    assert published.key == fresh.key == "check" and published.solvers == fresh.solvers
    for old, new in zip(published.rows, fresh.rows):
        assert old.row == new.row and old.baselines.keys() == new.baselines.keys()
        for s in fresh.solvers:
            a, b = old.cells[s], new.cells[s]
            if isinstance(a, str) or isinstance(b, str):
                assert a == b, (old.row.key, s)
                continue
            assert all(abs(x - y) <= 0.02 for x, y in zip(a.psnr, b.psnr)), (old.row.key, s, a.psnr, b.psnr)
            assert all(abs(x - y) <= 0.002 for x, y in zip(a.ssim, b.ssim)), (old.row.key, s)
