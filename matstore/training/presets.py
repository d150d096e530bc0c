"""The named training presets: model kind + config, data selection, target, hyperparameters.

Hyperparameters follow the seeds where they work and say so where they do not:
- GANs: batch 512 (OQMD) / 32 (MP, ICSD) as the thesis; WGAN-GP's Adam(1e-4, betas 0.5/0.9),
  5 critic steps per generator step, lambda 10 (the thesis' Adam 1e-3/1e-2 was for weight clipping;
  pass clip=0.01 to get that mode).
- Autoencoder: Adam 1e-3, batch 1024 (thesis 3.4.2).
- CNN: batch 512 (FE) / 256 (BG) as Table 4.2, but Adam 1e-3: Table 4.2's 0.1 / 0.01 diverge here.
- ElemNet: Adam 1e-3, batch 128, L1 loss (the MAE the seed reports).
- ElemNet-magpie: the ElemNet-style DNN, wider (512-256-128-64), on element fractions + the 132
  Magpie statistics, min-max scaled; Adam 1e-3 annealed to 0 over 150 epochs (cosine), batch 256.
  The best FE predictor in benchmarks/predictors.py (RF-magpie MAE x0.67 on 41k OQMD rows).
- RF: 100 trees on the flattened 22x6 Magpie matrix.
- GANs train with a fixed intra-op thread count (``threads``, recorded with the version): CPU
  convolution gradients depend on it in the last bits and a GAN amplifies that into a different
  model; 1 thread is also the fastest for these small convolutions on a shared 2-core machine.
- GANs: ``output_bias`` (0 = torch's default init) starts the generator's output bias there;
  the demo uses -4 (see matstore.pipeline for the measurements).
Epoch counts are the paper-scale defaults; ``train(..., epochs=N)`` shortens them.
Predictors learn from one source's values (``target_source``; None: the one DFT source in the
store that has the property, see matstore.training.data.target_source), recorded with the version.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from ..errors import MatstoreError
from ..models.autoencoder import AutoencoderConfig
from ..models.cnn import CNNConfig
from ..models.elemnet import ElemNetConfig
from ..models.forest import ForestConfig
from ..models.gan import WGANConfig

PROPERTIES = ("formation_energy_per_atom", "band_gap")


class PresetError(MatstoreError, ValueError):
    """An unknown preset name; the message names the presets."""


def _source(source: str) -> str:
    return f"SELECT DISTINCT composition_id FROM materials WHERE source = '{source}'"


def _with(prop: str) -> str:  # any source's value; the target source narrows it (data.load)
    return f"SELECT composition_id FROM composition_properties_by_source WHERE {prop} IS NOT NULL"


@dataclass(frozen=True)
class Preset:
    name: str
    kind: str
    config: Callable[[], object]
    selection: str                        # default SQL returning composition_id
    featurizer: str | None = None         # matstore.features name (predictors)
    property: str | None = None           # target column of composition_properties_by_source
    target_source: str | None = None      # whose values (None: the store's one DFT source)
    hyper: dict = field(default_factory=dict)
    description: str = ""


FE, BG = PROPERTIES


def magpie_dnn() -> ElemNetConfig:
    """ElemNet-style DNN for fractions+magpie inputs (218; n_inputs is set from the data)."""
    return ElemNetConfig(n_inputs=218, widths=(512, 256, 128, 64), dropouts=(0.1, 0.1, 0.0, 0.0),
                         scale_inputs=True)
# The one list of training presets (the CLI's `train --model` choices).
PRESETS: dict[str, Preset] = {p.name: p for p in [
    Preset("gan-oqmd", "wgan", WGANConfig.oqmd, _source("oqmd"), featurizer="onehot",
           hyper=dict(epochs=1000, batch_size=512, lr_g=1e-4, lr_d=1e-4, n_critic=5, gp_lambda=10.0,
                      clip=None, n_eval_samples=1000, threads=1, output_bias=0.0),
           description="WGAN, Table 3.1, on the store's OQMD compositions"),
    Preset("gan-mp", "wgan", WGANConfig.small, _source("mp"), featurizer="onehot",
           hyper=dict(epochs=1000, batch_size=32, lr_g=1e-4, lr_d=1e-4, n_critic=5, gp_lambda=10.0,
                      clip=None, n_eval_samples=1000, threads=1, output_bias=0.0),
           description="WGAN, Table 3.2, on the store's Materials Project compositions"),
    Preset("gan-icsd", "wgan", WGANConfig.small, _source("icsd"), featurizer="onehot",
           hyper=dict(epochs=1000, batch_size=32, lr_g=1e-4, lr_d=1e-4, n_critic=5, gp_lambda=10.0,
                      clip=None, n_eval_samples=1000, threads=1, output_bias=0.0),
           description="WGAN, Table 3.2, on the store's ICSD compositions"),
    Preset("ae", "autoencoder", AutoencoderConfig, "SELECT composition_id FROM known",
           featurizer="onehot", hyper=dict(epochs=1000, batch_size=1024, lr=1e-3, patience=50),
           description="autoencoder, Table 3.5, -Dice loss, on every known composition"),
    Preset("cnn-fe", "cnn", CNNConfig, _with(FE), featurizer="magpie", property=FE,
           hyper=dict(epochs=2000, batch_size=512, lr=1e-3, patience=50, loss="l1"),
           description="CNN on the 22x6 Magpie matrix (Table 4.1) -> formation energy"),
    Preset("cnn-bg", "cnn", CNNConfig, _with(BG), featurizer="magpie", property=BG,
           hyper=dict(epochs=2000, batch_size=256, lr=1e-3, patience=50, loss="l1"),
           description="CNN on the 22x6 Magpie matrix (Table 4.1) -> band gap"),
    Preset("elemnet-fe", "elemnet", ElemNetConfig, _with(FE), featurizer="fractions", property=FE,
           hyper=dict(epochs=1000, batch_size=128, lr=1e-3, patience=50, loss="l1"),
           description="ElemNet-style DNN on element fractions (seed 004) -> formation energy"),
    Preset("elemnet-magpie-fe", "elemnet", magpie_dnn, _with(FE), featurizer="fractions+magpie",
           property=FE, hyper=dict(epochs=150, batch_size=256, lr=1e-3, patience=150, loss="l1",
                                   schedule="cosine"),
           description="ElemNet-style DNN on element fractions + Magpie statistics -> formation energy"),
    Preset("elemnet-magpie-bg", "elemnet", magpie_dnn, _with(BG), featurizer="fractions+magpie",
           property=BG, hyper=dict(epochs=150, batch_size=256, lr=1e-3, patience=150, loss="l1",
                                   schedule="cosine"),
           description="ElemNet-style DNN on element fractions + Magpie statistics -> band gap"),
    Preset("rf-fe", "rf", ForestConfig, _with(FE), featurizer="magpie", property=FE,
           description="random forest on Magpie features -> formation energy (baseline)"),
    Preset("rf-bg", "rf", ForestConfig, _with(BG), featurizer="magpie", property=BG,
           description="random forest on Magpie features -> band gap (baseline)"),
]}


def get(name: str) -> Preset:
    try:
        return PRESETS[name]
    except KeyError:
        raise PresetError(f"unknown preset {name!r} (presets: {', '.join(PRESETS)})") from None
