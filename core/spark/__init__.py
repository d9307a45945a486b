"""Training on Apache Spark when the data outgrows one machine.

With ``TRACKER_SPARK_MASTER`` set (``local[2]``, ``spark://host:7077``, ``yarn``...), two
jobs run on Spark instead of in the worker's process, and write what the single-machine
path writes:

- the route recommender's collaborative part is Spark MLlib's ALS on implicit feedback
  (``core.spark.recommend``); the hybrid, its coefficients and the precomputed lists are
  the single-machine code's, fed with ALS's factors;
- the anomaly model's database activities are read by a Spark job from the points table
  (JDBC) and the Parquet cold tier, and their features are computed on the executors by the
  same function scoring uses (``core.spark.features``); the forest is trained on the
  driver and saved in the same model file.

Without it nothing changes, and pyspark need not be installed (``requirements-spark.txt``).
"""
