"""The route recommender's collaborative part on Spark: MLlib's ALS on implicit feedback.

``als(spark)`` gives the function ``core.recommend.model.Recommender`` calls with the
implicit feedback of every (athlete, route) pair (``core.recommend.feedback.implicit``); Spark
fits the factors (Hu, Koren and Volinsky's implicit ALS: a preference of 1 where the
feedback is positive, 0 where it is not or negative, held with confidence 1 + alpha |r|),
and the driver gets them back as arrays. Ranking, the hybrid and the precomputed lists stay
the single-machine code's, so both paths write the same tables.
"""

from __future__ import annotations

import numpy as np

from core.recommend.feedback import Factors
from core.recommend.model import SEED

RANK = 32
REG = 0.05
ALPHA = 10.0
ITERATIONS = 12


def als(spark, rank: int = RANK, reg: float = REG, alpha: float = ALPHA, iterations: int = ITERATIONS,
        seed: int = SEED):
    """A ``factors`` function for ``Recommender(collaborative="als")`` fitted on ``spark``."""

    def fit(feedback: dict[tuple[int, int], float]) -> Factors:
        return fit_als(spark, feedback, rank, reg, alpha, iterations, seed)

    return fit


def fit_als(spark, feedback: dict[tuple[int, int], float], rank: int = RANK, reg: float = REG,
            alpha: float = ALPHA, iterations: int = ITERATIONS, seed: int = SEED) -> Factors:
    import pandas as pd
    from pyspark.ml.recommendation import ALS

    if not feedback:
        return Factors({}, np.zeros((0, rank)), {}, np.zeros((0, rank)))
    # ALS takes 32-bit ids: the athletes (63-bit pseudonyms) and routes become row numbers.
    keys = np.array(list(feedback), dtype=np.int64)
    user_ids, user_rows = np.unique(keys[:, 0], return_inverse=True)
    item_ids, item_rows = np.unique(keys[:, 1], return_inverse=True)
    frame = pd.DataFrame({"user": user_rows.astype(np.int32), "item": item_rows.astype(np.int32),
                          "strength": np.fromiter(feedback.values(), dtype=float, count=len(feedback))})
    blocks = max(1, spark.sparkContext.defaultParallelism)
    model = ALS(rank=rank, maxIter=iterations, regParam=reg, alpha=alpha, implicitPrefs=True, userCol="user",
                itemCol="item", ratingCol="strength", seed=seed, numUserBlocks=blocks,
                numItemBlocks=blocks).fit(spark.createDataFrame(frame))
    users, user_vectors = _vectors(model.userFactors, user_ids, rank)
    items, item_vectors = _vectors(model.itemFactors, item_ids, rank)
    if not (np.isfinite(user_vectors).all() and np.isfinite(item_vectors).all()):
        raise ArithmeticError("ALS diverged: its factors hold NaN or infinity")
    return Factors(users, user_vectors, items, item_vectors)


def _vectors(frame, ids: np.ndarray, rank: int) -> tuple[dict[int, int], np.ndarray]:
    """The factors as an array, and which id each of its rows is."""
    rows = frame.toPandas()
    vectors = np.array(rows["features"].tolist(), dtype=float).reshape(len(rows), rank)
    return {int(ids[i]): n for n, i in enumerate(rows["id"])}, vectors
