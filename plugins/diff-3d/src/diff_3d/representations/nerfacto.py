"""nerfstudio's nerfacto-style field as a representation: a hash grid and small MLPs, sampled by proposal networks.

Müller et al. (2022, Instant-NGP) for the multiresolution hash encoding; Barron et al. (2022,
Mip-NeRF 360) for the proposal sampler and its interlevel and distortion losses; the field is
nerfstudio's ``GenerfactoField`` (density and view-independent colour) and the proposals its
``HashMLPDensityField``, all with the pure-torch implementation (``implementation="torch"``),
so it trains on a CPU; nerfacc's occupancy grid and gsplat, which need CUDA, are not used.

The same module renders diffcore :class:`~diffcore.protocols.Camera` batches (``render``,
``render_outputs``) and nerfstudio ``RayBundle``s (``render_bundle``), which is how the nerfstudio
methods ``diff-sds``, ``diff-sjc`` and ``diff-vsd`` use it. Colour and background are in [-1, 1].
During training, the samplers' jitter draws from torch's global generator (as in nerfstudio).
"""

from __future__ import annotations

import torch

from diff_3d.cameras import camera_rays
from diff_3d.rendering import images, ray_box
from diff_3d.representations.volume import VolumeRepresentation
from diffcore.errors import DiffcoreError
from diffcore.protocols import Camera, Rendering


def require_nerfstudio():
    try:
        import nerfstudio  # noqa: F401
    except ImportError as exc:
        raise ImportError('the nerfacto representation needs nerfstudio: pip install "diff-3d" (it brings nerfstudio 1.1)') from exc


class NerfactoField(VolumeRepresentation):
    """A nerfacto-style hash-grid field with two proposal networks (see the module docstring).

    Args:
        half_size, background: the box and the background colour, as for :class:`VolumeRepresentation`.
        max_res, num_levels, log2_hashmap_size: the field's hash grid.
        proposal_samples, samples: samples per ray for the two proposal levels and for the field.
        interlevel_weight, distortion_weight: the proposal (interlevel) and distortion losses' weights.
        seed: the initialisation (torch's global generator is forked and seeded with it).
    """

    def __init__(
        self,
        *,
        half_size: float = 1.0,
        background=1.0,
        max_res: int = 128,
        num_levels: int = 8,
        log2_hashmap_size: int = 15,
        proposal_samples: tuple[int, int] = (64, 32),
        samples: int = 32,
        interlevel_weight: float = 1.0,
        distortion_weight: float = 0.01,
        seed: int = 0,
    ):
        require_nerfstudio()
        from nerfstudio.fields.density_fields import HashMLPDensityField
        from nerfstudio.fields.generfacto_field import GenerfactoField
        from nerfstudio.model_components.ray_samplers import ProposalNetworkSampler, UniformSampler

        super().__init__(half_size=half_size, samples=samples, background=background, channels=3)
        if len(proposal_samples) != 2 or min(proposal_samples) < 2:
            raise DiffcoreError(f"proposal_samples must be two counts >= 2, got {proposal_samples}")
        self.interlevel_weight, self.distortion_weight = float(interlevel_weight), float(distortion_weight)
        aabb = self.bounds.clone()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seed))
            self.field_network = GenerfactoField(
                aabb, num_levels=num_levels, max_res=max_res, log2_hashmap_size=log2_hashmap_size, implementation="torch"
            )
            self.proposal_networks = torch.nn.ModuleList(
                HashMLPDensityField(
                    aabb, hidden_dim=16, log2_hashmap_size=min(log2_hashmap_size, 15), num_levels=5, max_res=res, implementation="torch"
                )
                for res in (max(16, max_res // 4), max(16, max_res // 2))
            )
        self.sampler = ProposalNetworkSampler(
            num_nerf_samples_per_ray=int(samples),
            num_proposal_samples_per_ray=tuple(int(s) for s in proposal_samples),
            num_proposal_network_iterations=2,
            single_jitter=False,
            initial_sampler=UniformSampler(single_jitter=False),
        )

    def param_groups(self) -> dict[str, list[torch.nn.Parameter]]:
        """The parameters as nerfstudio's optimisers name them: ``proposal_networks`` and ``fields``."""
        return {"proposal_networks": list(self.proposal_networks.parameters()), "fields": list(self.field_network.parameters())}

    def bundle(self, origins: torch.Tensor, directions: torch.Tensor):
        """A nerfstudio ``RayBundle`` of rays (R, 3), clipped to the box."""
        from nerfstudio.cameras.rays import RayBundle

        near, far = ray_box(origins, directions, self.bounds.to(origins))
        return RayBundle(
            origins=origins,
            directions=directions,
            pixel_area=torch.full_like(origins[:, :1], 1e-6),
            camera_indices=torch.zeros_like(origins[:, :1], dtype=torch.long),
            nears=near[:, None],
            fars=torch.maximum(far, near + 1e-4)[:, None],
        )

    def render_bundle(self, bundle, *, normals: bool = False) -> dict:
        """Outputs of a nerfstudio ``RayBundle`` (any batch shape, flattened): rgb in [-1, 1], depth, accumulation, [normals], and
        the proposal weights."""
        from nerfstudio.field_components.field_heads import FieldHeadNames
        from nerfstudio.model_components.renderers import DepthRenderer

        shape = bundle.origins.shape[:-1]
        bundle = bundle.flatten() if len(shape) != 1 else bundle
        near, far = ray_box(bundle.origins, bundle.directions, self.bounds.to(bundle.origins))
        bundle.nears, bundle.fars = near[:, None], torch.maximum(far, near + 1e-4)[:, None]
        density_fns = [network.density_fn for network in self.proposal_networks]
        ray_samples, weights_list, ray_samples_list = self.sampler(bundle, density_fns=density_fns)
        field_outputs = self.field_network(ray_samples, compute_normals=normals)
        weights = ray_samples.get_weights(field_outputs[FieldHeadNames.DENSITY])
        weights_list.append(weights)
        ray_samples_list.append(ray_samples)
        accumulation = weights.sum(dim=-2)
        color = 2 * field_outputs[FieldHeadNames.RGB] - 1
        rgb = (weights * color).sum(dim=-2) + (1 - accumulation) * self.background.to(color)
        out = {
            "rgb": rgb,
            "accumulation": accumulation,
            "depth": DepthRenderer(method="expected")(weights, ray_samples),
            "weights_list": weights_list,
            "ray_samples_list": ray_samples_list,
        }
        if normals:
            out["normals"] = (weights.detach() * field_outputs[FieldHeadNames.NORMALS]).sum(dim=-2)
        return out

    def render_rays(self, origins: torch.Tensor, directions: torch.Tensor, *, normals: bool = False) -> dict[str, torch.Tensor]:
        return self.render_bundle(self.bundle(origins, directions), normals=normals)

    def render_outputs(self, camera: Camera, *, normals: bool = True) -> Rendering:
        origins, directions = camera_rays(camera)
        return images(self.render_rays(origins.reshape(-1, 3), directions.reshape(-1, 3), normals=normals), camera)

    def regularisation(self, outputs: dict) -> dict[str, torch.Tensor]:
        """The proposal networks' interlevel loss and the distortion loss (Mip-NeRF 360, eqs. 13 and 15) of rendered outputs."""
        from nerfstudio.model_components.losses import distortion_loss, interlevel_loss

        if "weights_list" not in outputs or not self.training:
            return {}
        return {
            "interlevel_loss": self.interlevel_weight * interlevel_loss(outputs["weights_list"], outputs["ray_samples_list"]),
            "distortion_loss": self.distortion_weight * distortion_loss(outputs["weights_list"], outputs["ray_samples_list"]).mean(),
        }

    def field(self, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        from nerfstudio.cameras.rays import Frustums, RaySamples
        from nerfstudio.field_components.field_heads import FieldHeadNames

        samples = RaySamples(
            frustums=Frustums(
                origins=points,
                directions=torch.zeros_like(points).index_fill_(-1, torch.tensor([2], device=points.device), -1.0),
                starts=torch.zeros_like(points[..., :1]),
                ends=torch.zeros_like(points[..., :1]),
                pixel_area=torch.ones_like(points[..., :1]),
            )
        )
        density, embedding = self.field_network.get_density(samples)
        rgb = self.field_network.get_outputs(samples, density_embedding=embedding)[FieldHeadNames.RGB]
        inside = (self.normalized(points).abs() <= 1).all(dim=-1)
        return density[..., 0] * inside, 2 * rgb - 1
