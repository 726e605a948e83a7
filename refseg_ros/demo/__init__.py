"""The end-to-end demo: a simulated camera, the grounding node, scripted spoken commands, scores.

``script`` (commands from the ground truth) and ``scoring`` (IoU, 3D error, summary files) are
pure; ``runner`` runs it (``refseg demo``, ``make demo``) with ``processes`` (child processes),
``driver`` (its own ROS node) and ``drawing`` (PNGs, GIF); ``config`` holds DemoConfig and DemoError.
"""
