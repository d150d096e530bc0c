"""Autoencoder latent vectors of compositions, stored in `latents` keyed by (composition_id,
autoencoder model_id): computed once per composition and version, read back by every round.

A table of its own rather than a featurization: featurizers are fixed functions of the
composition (one `features` row per featurizer version), a latent depends on a model version's
weights, and model ids are remapped on merge like any other model_id column.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import pyarrow as pa

from ..compositions import CompositionBatch
from ..features import onehot
from ..store import Store, append_new, frame
from .errors import ALError

ENCODE_ROWS = 4096
# AE decoder output (sigmoid) -> composition: a cell is set at >= 0.5, the autoencoder's own
# "decodable" threshold (models.autoencoder.decodable), i.e. onehot.decode's tolerance 0.5.
DECODE_TOLERANCE = 0.5


def check_autoencoder(ae) -> None:
    from .. import models  # noqa: PLC0415

    if ae.kind not in models.KINDS or not models.KINDS[ae.kind].latent_space:
        raise ALError(f"model {ae.ref} is a {ae.kind}, not an autoencoder (train one: --model ae)")


def encode(ae, batch: CompositionBatch) -> tuple[np.ndarray, np.ndarray]:
    """(latents float32 (n, d), encodable bool (n,)); rows that do not fit the 8x85 map are 0."""
    import torch  # noqa: PLC0415

    maps, ok = onehot.encode(batch)
    out = np.zeros((len(batch), ae.latent_dim), np.float32)
    idx = np.flatnonzero(ok)
    ae.module.eval()
    with torch.no_grad():
        for i in range(0, len(idx), ENCODE_ROWS):
            part = idx[i:i + ENCODE_ROWS]
            x = torch.as_tensor(maps[part], device=ae.device)
            out[part] = ae.module.encode(x).float().cpu().numpy()
    return out, ok


def decode(ae, z: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Latent points (m, d) -> (z (m, 8) atomic numbers, counts (m, 8), decodable (m,))."""
    import torch  # noqa: PLC0415

    ae.module.eval()
    with torch.no_grad():
        maps = ae.module.decode(torch.as_tensor(np.asarray(z, np.float32), device=ae.device))
    return onehot.decode_numpy(maps.cpu().numpy(), DECODE_TOLERANCE)


def ensure(store: Store, ae, composition_ids: np.ndarray) -> pl.DataFrame:
    """Latents of these compositions under `ae` (composition_id, vector), computing and storing
    the missing ones in one transaction. Compositions the 8x85 map cannot hold are left out."""
    ids = np.unique(np.asarray(composition_ids, np.int64))
    ids_t = pa.table({"composition_id": ids})
    with store.connect() as con:
        con.register("_al_ids", ids_t)
        try:
            have = frame(con, "SELECT l.composition_id, l.vector FROM latents l "
                              "JOIN _al_ids USING (composition_id) WHERE l.model_id = ?", [ae.model_id])
            todo = frame(con, "SELECT c.composition_id, c.elements, c.counts FROM compositions c "
                              "JOIN _al_ids USING (composition_id) WHERE c.composition_id NOT IN "
                              "(SELECT composition_id FROM latents WHERE model_id = ?) "
                              "ORDER BY c.composition_id", [ae.model_id])
        finally:
            con.unregister("_al_ids")
    if todo.height:
        batch = CompositionBatch.from_lists(todo["elements"].to_list(), todo["counts"].to_list(),
                                            todo["composition_id"].to_numpy())
        vec, ok = encode(ae, batch)
        new = pl.DataFrame({"composition_id": batch.composition_id[ok],
                            "model_id": np.full(int(ok.sum()), ae.model_id, np.int32),
                            "vector": pl.Series(vec[ok].tolist(), dtype=pl.List(pl.Float32))})
        if new.height:
            with store.transaction() as con:
                append_new(con, "latents", new, ["composition_id", "model_id"])
            have = pl.concat([have, new.select("composition_id", "vector")], how="vertical_relaxed")
    return have.sort("composition_id")


def matrix(df: pl.DataFrame) -> np.ndarray:
    """The vector column as a float64 (n, d) array."""
    if df.height == 0:
        raise ALError("no latent vectors: none of the compositions fits the autoencoder's 8x85 map")
    return np.asarray(df["vector"].to_list(), dtype=np.float64)
