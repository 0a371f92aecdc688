"""Frozen parts wait on the CPU while training does not need them, and are on the device whenever the loop draws."""

from __future__ import annotations

import torch

from charforge.train.parking import Parking, frozen_after_caching


class _Recorder(torch.nn.Module):
    """A module that records where it is sent (a CUDA device cannot be used on a CPU-only machine)."""

    def __init__(self) -> None:
        super().__init__()
        self.places: list[str] = []

    def to(self, device, *args, **kwargs):  # noqa: D102
        self.places.append(str(device))
        return self


class _Pipe:
    def __init__(self) -> None:
        self.vae = _Recorder()


def test_parked_modules_come_back_for_each_draw_and_leave_again():
    t5, clip = _Recorder(), _Recorder()
    parking = Parking([t5, clip], "cuda:0")
    parking.park()
    assert t5.places == clip.places == ["cpu"] and parking.parked
    with parking.back():
        assert t5.places[-1] == "cuda:0" and not parking.parked  # drawn on the device
    assert t5.places == ["cpu", "cuda:0", "cpu"] and parking.parked
    try:
        with parking.back():
            raise KeyboardInterrupt
    except KeyboardInterrupt:
        pass
    assert t5.places[-1] == "cpu"  # parked again when the draw fails
    parking.unpark()
    parking.unpark()  # the run's end brings them back once, for good
    assert t5.places[-1] == "cuda:0" and t5.places.count("cuda:0") == 3 and not parking.parked
    with parking.back():
        pass
    assert t5.places[-1] == "cuda:0"  # not parked: a draw leaves them where they are


def test_nothing_moves_on_a_cpu_run():
    module = _Recorder()
    parking = Parking([module], "cpu")
    parking.park()
    with parking.back():
        pass
    assert module.places == [] and not parking.parked


def test_what_waits_is_the_frozen_encoders_once_embeddings_are_cached_and_the_vae_once_latents_are():
    pipe, t5, clip = _Pipe(), _Recorder(), _Recorder()
    both = frozen_after_caching(pipe, [clip, t5], [clip], embeddings_cached=True, latents_cached=True)
    assert both[0] is t5 and both[1] is pipe.vae and len(both) == 2  # the trained CLIP stays
    assert frozen_after_caching(pipe, [clip, t5], [], embeddings_cached=False, latents_cached=False) == []
    only_vae = frozen_after_caching(pipe, [clip, t5], [], embeddings_cached=False, latents_cached=True)
    assert len(only_vae) == 1 and only_vae[0] is pipe.vae
