"""``refseg bench``: latency figures of the model and of the node, above everything they measure.

* :mod:`.run`: runs every part, checks the targets, prints the summary (``run_bench``, ``summary``);
* :mod:`.figures`: in-process figures (predict per backend, set_command, batching, law vs static,
  the paper's backbone);
* :mod:`.latency`: the node in its own process, image published -> GroundingArray received, next to
  ``predict`` alone (a script, ``python -m refseg_ros.bench.latency``, and ``bench_ros`` that runs it);
* :mod:`.ros_client`: the node process and the DDS client that script uses.

Nothing is imported here, so ``python -m refseg_ros.bench.latency`` runs that module only once.
"""
