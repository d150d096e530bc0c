"""What a generator's samples are worth at training time: decodable, valid (charge neutral and
electronegativity balanced), unique, novel and the share of a leave-out set recovered. (Per run,
in the store: matstore.quality.)"""

from __future__ import annotations

import numpy as np


def generation_metrics(samples: np.ndarray, train_ids: np.ndarray, known_ids: np.ndarray | None = None,
                       leave_out_ids: np.ndarray | None = None, tolerance: float | None = None) -> dict:
    """Validity, uniqueness, novelty (and leave-out recovery) of generated (n, 8, 85) maps.

    decodable: the map decodes to a composition (onehot.decode, MatGAN's tolerance by default); validity: charge neutral and electronegativity
    balanced (matstore.validity, else SMACT), over the decodable samples; uniqueness: distinct /
    decodable; novelty: distinct compositions not in the training rows (novelty_known: not in any
    known composition either) / distinct; recovery: share of leave_out_ids generated.
    """
    from ..features import onehot  # noqa: PLC0415

    tol = onehot.DEFAULT_TOLERANCE if tolerance is None else tolerance
    z, counts, ok = onehot.decode(np.asarray(samples), tol)
    return composition_metrics(z, counts, train_ids, known_ids, leave_out_ids, ok)


def composition_metrics(z: np.ndarray, counts: np.ndarray, train_ids: np.ndarray,
                        known_ids: np.ndarray | None = None, leave_out_ids: np.ndarray | None = None,
                        ok: np.ndarray | None = None) -> dict:
    """generation_metrics of sampled (z, counts) rows; ok marks the decodable ones (default:
    rows with an element)."""
    from ..compositions import CompositionBatch, keys_from_arrays  # noqa: PLC0415

    z, counts = np.asarray(z), np.asarray(counts)
    n = len(z)
    ok = np.asarray((z > 0).any(axis=1) if ok is None else ok, bool)
    out = {"n_samples": n, "decodable_pct": 100 * float(ok.mean()) if n else 0.0,
           "validity_pct": 0.0, "uniqueness_pct": 0.0, "novelty_pct": 0.0,
           "novelty_known_pct": 0.0, "recovery_pct": 0.0, "n_unique": 0}
    if not ok.any():
        return out
    z, counts = np.asarray(z)[ok], np.asarray(counts)[ok]
    keys = keys_from_arrays(z, counts)
    uniq, first, inv = np.unique(keys, return_index=True, return_inverse=True)
    valid = _valid(CompositionBatch(uniq, z[first], counts[first]))
    novel = ~np.isin(uniq, np.asarray(train_ids, np.int64))
    out.update(validity_pct=100 * float(valid[inv].mean()),  # duplicates weigh as generated
               uniqueness_pct=100 * len(uniq) / int(ok.sum()), n_unique=int(len(uniq)),
               novelty_pct=100 * float(novel.mean()))
    if known_ids is not None:
        out["novelty_known_pct"] = 100 * float((novel & ~np.isin(uniq, np.asarray(known_ids, np.int64))).mean())
    if leave_out_ids is not None and len(leave_out_ids):
        out["recovery_pct"] = 100 * float(np.isin(np.asarray(leave_out_ids, np.int64), uniq).mean())
    return out


def _valid(batch) -> np.ndarray:
    """charge_neutral & electronegativity_balanced per composition."""
    try:
        from .. import validity  # noqa: PLC0415

        r = validity.check(batch)
        return np.asarray(r["charge_neutral"], bool) & np.asarray(r["electronegativity_balanced"], bool)
    except (ImportError, AttributeError):
        from smact.screening import smact_validity  # noqa: PLC0415

        from ..compositions import from_arrays  # noqa: PLC0415

        return np.array([smact_validity(from_arrays(batch.z[i], batch.counts[i]).formula, include_alloys=False)
                         for i in range(len(batch))], bool)
