"""``render_grouped`` against a plain reference: every ray rendered on its own, one by one."""

from __future__ import annotations

import torch

from nerfstudio_methods.grouped_render import render_grouped


def fake_render(inputs: torch.Tensor, calls: list[tuple[int, list[int]]]):
    """A render whose values depend on the group and on each ray's own input: colour-like, scalar and integer."""

    def render(group: int, rows: torch.Tensor) -> dict[str, torch.Tensor]:
        calls.append((group, rows.tolist()))
        x = inputs[rows]
        return {
            "rgb": torch.sigmoid(x * (group + 1.0)),
            "depth": (x.sum(dim=-1, keepdim=True) + group) ** 2,
            "group": torch.full((rows.numel(),), group, dtype=torch.long),
        }

    return render


def test_render_grouped_equals_rendering_each_ray_alone() -> None:
    generator = torch.Generator().manual_seed(0)
    inputs = torch.randn(37, 3, generator=generator, requires_grad=True)
    groups = torch.randint(0, 5, (37,), generator=generator) * 3  # group ids need not be contiguous
    calls: list[tuple[int, list[int]]] = []
    merged = render_grouped(groups, fake_render(inputs, calls))

    reference_calls: list[tuple[int, list[int]]] = []
    reference_render = fake_render(inputs, reference_calls)
    alone = [reference_render(int(groups[i]), torch.tensor([i])) for i in range(37)]
    assert set(merged) == {"rgb", "depth", "group"}
    for key in merged:
        expected = torch.cat([one[key] for one in alone])
        assert merged[key].dtype == expected.dtype, key
        # float kernels may round differently on a batch than on one element (vectorised paths): ulp tolerance
        torch.testing.assert_close(merged[key], expected, rtol=1e-6, atol=1e-7)

    # each group rendered once, in ascending order, with its rays in ray order
    assert [group for group, _ in calls] == sorted(set(groups.tolist()))
    for group, rows in calls:
        assert rows == [i for i in range(37) if int(groups[i]) == group]

    # gradients reach every ray through the merge
    (merged["rgb"].sum() + merged["depth"].sum()).backward()
    assert inputs.grad is not None and bool((inputs.grad != 0).all())


def test_one_group() -> None:
    inputs = torch.randn(4, 3)
    calls: list[tuple[int, list[int]]] = []
    merged = render_grouped(torch.full((4,), 2), fake_render(inputs, calls))
    assert calls == [(2, [0, 1, 2, 3])]
    torch.testing.assert_close(merged["rgb"], torch.sigmoid(inputs * 3.0), rtol=1e-6, atol=1e-7)
